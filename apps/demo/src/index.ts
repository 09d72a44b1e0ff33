/**
 * `npm run demo`: the whole slipstream story with real processes and real numbers.
 *
 * 1. a publisher creates a bucket with bounded retention and writes a route table, then
 *    keeps changing it;
 * 2. node A (its own OS process) folds it into LevelDB with a live line;
 * 3. node A is SIGKILLed mid-stream; on restart it receives only the delta;
 * 4. nodes A and B race for the export lease; exactly one exports and uploads;
 * 5. the publisher writes until retention evicts the early log; node C bootstraps from the
 *    artifact, beside node R replaying from nothing;
 * 6. node D, whose cursor was evicted, detects the expiry, resyncs and deletes what vanished;
 * 7. a table per node: keys, cursor, digest equal to the bucket's, time to ready.
 *
 * The exit code is non-zero when any fold differs from the bucket or any check fails.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ExportLease } from "@slipstream/lease";
import { connect, type NatsConnection } from "@slipstream/nats";
import { type NatsServerHandle, startNats } from "@slipstream/testkit";
import { type DemoArgs, parseArgs, USAGE } from "./args.js";
import { digestUnordered } from "./digest.js";
import { NodeProcess } from "./fleet.js";
import { progressBar } from "./progress.js";
import type { NodeConfig, NodeStart } from "./protocol.js";
import { Publisher, routeKey } from "./publisher.js";
import { liveLine, ms, n, say, sleep, table } from "./term.js";
import { type DemoTransport, newDemoSecurity, setUpTransport } from "./transports.js";

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= "true";

const LEASE_TTL_MS = 3_000;
const LIVE_MS = 1_500;
const DOWNTIME_MS = 1_500;

/** One row of the final table. */
interface Row {
  node: NodeProcess;
  role: string;
  readyMs: number;
}

function step(i: number, text: string): void {
  say();
  say(`[${i}/7] ${text}`);
}

function check(ok: boolean, failures: string[], what: string): string {
  if (!ok) failures.push(what);
  return ok ? "✓" : "✗";
}

async function run(args: DemoArgs): Promise<number> {
  const t0 = performance.now();
  const failures: string[] = [];
  const work = await mkdtemp(join(tmpdir(), "slipstream-demo-"));
  const nodes: NodeProcess[] = [];
  let server: NatsServerHandle | undefined;
  let nc: NatsConnection | undefined;
  let transport: DemoTransport | undefined;
  let publisher: Publisher | undefined;
  try {
    say(`slipstream demo: ${n(args.routes)} routes, transport ${args.transport}`);
    // ── 1 ─────────────────────────────────────────────────────────────────────────────
    step(1, "the publisher creates a bucket with bounded retention and writes the route table");
    let natsUrl = args.nats;
    if (natsUrl === undefined) {
      server = await startNats();
      natsUrl = server.url;
      say(`    nats-server ${server.version} with JetStream on ${natsUrl} (started for this run)`);
    } else say(`    nats-server at ${natsUrl} (external)`);
    nc = await connect({ servers: natsUrl, name: "slipstream-demo-publisher" });
    transport = await setUpTransport(args.transport, work);
    say(`    artifacts go to ${transport.describe}`);
    const { keyId, ...security } = newDemoSecurity();
    say(
      `    artifacts are signed (Ed25519 key ${keyId}, the only key the nodes trust) and encrypted at rest (AES-256-GCM, fleet key)`,
    );
    // A fresh bucket per run, so an external server can be reused.
    const suffix = server ? "" : `_${Date.now().toString(36)}`;
    const bucket = `routes${suffix}`;
    const leaseBucket = `demo_leases${suffix}`;
    const maxBytes = Math.max(8 * 1024 * 1024, args.routes * 1024);
    const kv = await nc.store({ name: bucket, history: 1, maxBytes, discard: "old" });
    const leases = await nc.store({ name: leaseBucket, history: 1 });
    say(
      `    bucket "${bucket}": history 1 (a rewritten key's old revision leaves the log), ` +
        `at most ${n(Math.round(maxBytes / 1024 / 1024))} MiB, discard old`,
    );
    publisher = new Publisher(kv);
    const pub = publisher;
    const seeding = liveLine(1000);
    let t = performance.now();
    await pub.seed(args.routes, (done) => seeding.update(`    seeding ${n(done)} / ${n(args.routes)} routes`));
    const seeded = (await kv.status()).lastSeq;
    seeding.done(
      `    wrote ${n(args.routes)} routes under ${5} region prefixes (route.us-east.api.r0 …) in ${ms(performance.now() - t)}; bucket at revision ${n(seeded)}`,
    );

    const nodeConfig = (name: string, start: NodeStart): NodeConfig => ({
      name,
      natsUrl: natsUrl as string,
      bucket,
      leaseBucket,
      leaseKey: "export.routes",
      leaseTtlMs: LEASE_TTL_MS,
      artifactKey: "routes/latest",
      dir: join(work, `fold-${name.toLowerCase()}`),
      scratchDir: join(work, `scratch-${name.toLowerCase()}`),
      start,
      transport: transport?.config ?? { kind: "fs", root: work },
      security,
    });
    const startNode = (name: string, start: NodeStart = { kind: "open" }): NodeProcess => {
      const node = NodeProcess.start(nodeConfig(name, start));
      nodes.push(node);
      return node;
    };
    const head = async () => (await kv.status()).lastSeq;
    const showLive = (node: NodeProcess) => {
      const line = liveLine(1000);
      node.onLive = (m) => {
        const lag = BigInt(m.head) - BigInt(m.cursor);
        line.update(
          `    node ${node.name}  ${n(Math.round(m.ratePerSec)).padStart(7)} applied/s  cursor ${n(BigInt(m.cursor)).padStart(9)}  lag ${n(lag > 0n ? lag : 0n)}`,
        );
      };
      return () => {
        node.onLive = undefined;
        line.done();
      };
    };

    // ── 2 ─────────────────────────────────────────────────────────────────────────────
    step(2, "node A, its own process, folds the bucket into LevelDB while it keeps changing");
    // D folds the table first and goes offline; it comes back in step 6.
    t = performance.now();
    let d = startNode("D");
    await d.reach(seeded);
    const dCursor = await d.stop();
    say(`    (node D folded the table too, then went offline at cursor ${n(dCursor)}; it returns in step 6)`);
    const churnRate = Math.max(50, Math.round(args.routes / 10));
    pub.startChurn(churnRate, args.routes);
    say(`    the publisher now changes ~${n(churnRate)} routes/s (updates, new routes, deletes)`);
    let a = startNode("A");
    const endLive = showLive(a);
    await a.reach(seeded);
    await sleep(LIVE_MS);

    // ── 3 ─────────────────────────────────────────────────────────────────────────────
    step(3, "node A is killed with SIGKILL mid-stream; the changes go on");
    const lastLive = a.live ? BigInt(a.live.cursor) : 0n;
    await a.kill();
    // Measured once the process is gone: nothing after this revision reached its fold.
    const headAtKill = await head();
    endLive();
    say(
      `    killed node A with SIGKILL at bucket revision ${n(headAtKill)}; its last reported cursor was ${n(lastLive)}`,
    );
    await sleep(DOWNTIME_MS);
    await pub.pause();
    const headAtRestart = await head();
    const whileDown = headAtRestart - headAtKill;
    say(`    ${n(whileDown)} changes while node A was down (bucket now at ${n(headAtRestart)})`);
    a = startNode("A");
    const aStarted = await a.next("started");
    const aCursor = BigInt(aStarted.cursor);
    const aReached = await a.reach(headAtRestart);
    const aReadyMs = a.sinceHello();
    const expectedDelta = headAtRestart - aCursor;
    say(
      `    node A restarted from its LevelDB cursor ${n(aCursor)} (${n(headAtKill - aCursor)} changes had not been committed when it died)`,
    );
    const deltaOk = BigInt(aReached.received) === expectedDelta;
    say(
      `    ${check(deltaOk, failures, "node A's delta")} node A received ${n(aReached.received)} updates = ${n(whileDown)} made while it was down + ${n(headAtKill - aCursor)} uncommitted at the kill; ` +
        `ready in ${ms(aReadyMs)} (a full replay sends ${n(pub.live.size)})`,
    );
    pub.startChurn(churnRate, args.routes);

    // ── 4 ─────────────────────────────────────────────────────────────────────────────
    step(4, "nodes A and B race for the export lease; exactly one exports and uploads");
    const b = startNode("B");
    const bReached = await b.reach(await head());
    const bReadyMs = b.sinceHello();
    say(`    node B started from nothing: full replay of ${n(bReached.received)} updates, ready in ${ms(bReadyMs)}`);
    const race = async (round: number) => {
      const bar = progressBar("export");
      a.onTransfer = (m) => bar.update(m.progress);
      b.onTransfer = (m) => bar.update(m.progress);
      a.send({ cmd: "export" });
      b.send({ cmd: "export" });
      const [ra, rb] = await Promise.all([a.next("exported"), b.next("exported")]);
      bar.done();
      a.onTransfer = undefined;
      b.onTransfer = undefined;
      const winners = [ra, rb].filter((r) => r.outcome !== "skipped");
      for (const [name, r] of [
        ["A", ra],
        ["B", rb],
      ] as const) {
        say(
          r.outcome === "skipped"
            ? `    node ${name}: lease held by the other node, skipped`
            : `    node ${name}: won the lease, ${r.outcome} artifact at cursor ${n(BigInt(r.cursor ?? "0"))} (${r.files} files, ${n(r.bytes ?? 0)} bytes)`,
        );
      }
      say(
        `    ${check(winners.length === 1 && winners[0]?.outcome === "published", failures, `export round ${round}: exactly one winner`)} exactly one node exported in round ${round}`,
      );
      return BigInt(winners[0]?.cursor ?? "0");
    };
    await race(1);
    await pub.pause();

    // ── 5 ─────────────────────────────────────────────────────────────────────────────
    step(5, "the publisher writes until retention evicts the early log; node C bootstraps from an artifact");
    const rollout = liveLine(1000);
    const rewritten = await pub.rolloutUntilEvicted(dCursor + 1n, (done, first) =>
      rollout.update(
        `    rolling out a new version of the oldest routes: ${n(done)} rewritten, log starts at ${n(first)}`,
      ),
    );
    const status = await kv.status();
    rollout.done(
      `    rewrote the ${n(rewritten)} oldest routes: the log now starts at revision ${n(status.firstSeq)} ` +
        `(revisions 1…${n(status.firstSeq - 1n)} are gone; ${n(status.messages)} messages kept)`,
    );
    // The next round: the lease of round 1 must expire first (its ttl is the round period).
    const observer = new ExportLease({
      reader: leases.reader,
      writer: leases.writer,
      key: "export.routes",
      holderId: "publisher",
    });
    const held = await observer.current();
    if (held) await sleep(Math.max(0, held.expiresAt - Date.now() + 50));
    const headRound2 = await head();
    await Promise.all([a.reach(headRound2), b.reach(headRound2)]);
    say("    the next export round (the lease of round 1 has expired):");
    const exported = await race(2);
    pub.startChurn(churnRate, args.routes);
    await sleep(500);
    await pub.pause();
    const headC = await head();
    const c = startNode("C", { kind: "bootstrap" });
    const download = progressBar("download");
    c.onTransfer = (m) => download.update(m.progress);
    const cStarted = await c.next("started");
    download.done();
    const cReached = await c.reach(headC);
    const cReadyMs = c.sinceHello();
    say(
      `    node C imported the artifact (cursor ${n(BigInt(cStarted.cursor))}, ${n(cStarted.keys)} keys, verified) in ${ms(cStarted.bootstrapMs ?? 0)}, ` +
        `then received ${n(cReached.received)} updates: ready in ${ms(cReadyMs)}`,
    );
    if (BigInt(cStarted.cursor) !== exported) failures.push("node C's artifact cursor");
    const r = startNode("R");
    const rReached = await r.reach(headC);
    const rReadyMs = r.sinceHello();
    say(`    node R, for comparison, replays from nothing: ${n(rReached.received)} updates, ready in ${ms(rReadyMs)}`);
    say(
      `    time to ready (from process start, Node's own start-up excluded): bootstrap ${ms(cReadyMs)} vs full replay ${ms(rReadyMs)} (${(rReadyMs / cReadyMs).toFixed(1)}×)`,
    );

    // ── 6 ─────────────────────────────────────────────────────────────────────────────
    step(6, "node D returns: its cursor was evicted, so it resyncs and deletes what vanished");
    const vanished = Array.from({ length: args.routes }, (_, i) => routeKey(i)).filter((k) => !pub.live.has(k)).length;
    say(
      `    node D's cursor is ${n(dCursor)}; the next revision it needs, ${n(dCursor + 1n)}, was evicted (the log starts at ${n(status.firstSeq)})`,
    );
    d = startNode("D");
    const dStarted = await d.next("started");
    const headD = await head();
    await d.reach(headD);
    const dReadyMs = d.sinceHello();
    const dDigest = await d.digest();
    const resynced = dDigest.stats.resyncs >= 1;
    say(
      `    ${check(resynced, failures, "node D detected the expiry")} node D (${n(dStarted.keys)} keys at cursor ${n(BigInt(dStarted.cursor))}) got CURSOR_EXPIRED and resynced ${dDigest.stats.resyncs}× in ${ms(dReadyMs)}`,
    );
    say(
      `    ${check(dDigest.stats.syntheticDeletes === vanished, failures, "node D's synthetic deletes")} ` +
        `synthetic deletes: ${n(dDigest.stats.syntheticDeletes)} (routes deleted while D was away: ${n(vanished)})`,
    );

    // ── 7 ─────────────────────────────────────────────────────────────────────────────
    step(7, "every fold against the bucket");
    const final = await head();
    const bucketDigest = await digestUnordered(kv.reader.scan(""));
    const rows: Row[] = [
      { node: a, role: "restarted after SIGKILL", readyMs: aReadyMs },
      { node: b, role: "full replay", readyMs: bReadyMs },
      { node: c, role: "bootstrap from artifact", readyMs: cReadyMs },
      { node: r, role: "full replay", readyMs: rReadyMs },
      { node: d, role: "resync after expiry", readyMs: dReadyMs },
    ];
    const cells: string[][] = [];
    for (const row of rows) {
      await row.node.reach(final);
      const dg = await row.node.digest();
      const same = dg.digest === bucketDigest.digest && dg.keys === bucketDigest.keys;
      cells.push([
        row.node.name,
        row.role,
        n(dg.keys),
        n(BigInt(dg.cursor)),
        `${dg.digest.slice(0, 12)} ${check(same, failures, `node ${row.node.name}'s fold`)}`,
        ms(row.readyMs),
      ]);
    }
    cells.push([
      "bucket",
      `revision ${n(final)}`,
      n(bucketDigest.keys),
      n(final),
      bucketDigest.digest.slice(0, 12),
      "",
    ]);
    say();
    for (const line of table(
      ["node", "how it started", "keys", "cursor", "digest", "time to ready"],
      cells,
      new Set([2, 3, 5]),
    ))
      say(`    ${line}`);
    await Promise.all(rows.map((row) => row.node.stop()));
    say();
    if (failures.length === 0) say(`all folds equal the bucket; done in ${ms(performance.now() - t0)}.`);
    else say(`FAILED: ${failures.join(", ")}`);
    return failures.length === 0 ? 0 : 1;
  } finally {
    await publisher?.pause().catch(() => {});
    await Promise.all(nodes.filter((x) => x.running).map((x) => x.kill()));
    await nc?.close().catch(() => {});
    await transport?.close().catch(() => {});
    await server?.close();
    await rm(work, { recursive: true, force: true });
  }
}

let args: DemoArgs;
try {
  args = parseArgs(process.argv.slice(2), process.env);
} catch (err) {
  console.error((err as Error).message);
  process.exit(2);
}
if (args.help) {
  console.log(USAGE);
} else {
  try {
    process.exitCode = await run(args);
  } catch (err) {
    say();
    console.error("demo failed:", err);
    process.exitCode = 1;
  }
}
