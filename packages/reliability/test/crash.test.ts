/**
 * Crash campaign: a node process (watchApplied + LevelDB + export rounds) SIGKILLed while a
 * publisher mutates the bucket — at random moments, and inside chosen windows of export,
 * upload, pointer publish, prune, download and import (held open by small delays in the
 * node's blob store). After every kill the restarted node must converge, its fold must
 * equal the bucket, and the published pointer must still name a complete artifact and
 * never have moved backwards.
 *
 * `SLIPSTREAM_LONG=1` runs hundreds of kills (`SLIPSTREAM_KILLS` / `SLIPSTREAM_WINDOW_ROUNDS` size it).
 */
import { mkdir } from "node:fs/promises";
import { dirname, join } from "node:path";
import { connect, type NatsConnection, type NatsKvStore, type StoreConfig } from "@slipstream/nats";
import { hasNats, type NatsServerHandle, startNats, type TempDir, tempDir } from "@slipstream/testkit";
import { ArtifactTransport } from "@slipstream/transport";
import { FsBlobStore } from "@slipstream/transport-fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { bucketState, checkPointer, LONG, leftovers, type NodeConfig, NodeProc, Rng, sortedValues } from "./harness.js";

const KILLS = Number(process.env.SLIPSTREAM_KILLS ?? (LONG ? 150 : 3));
const WINDOW_ROUNDS = Number(process.env.SLIPSTREAM_WINDOW_ROUNDS ?? (LONG ? 8 : 1));
const SEED = Number(process.env.SLIPSTREAM_SEED ?? 7);

let server: NatsServerHandle;
let nc: NatsConnection;
let tmp: TempDir;
let kv: NatsKvStore;
let transport: ArtifactTransport;
let blobsDir: string;
const bucket: StoreConfig = { name: "crash", history: 1 };

/** A publisher that mutates 64 keys until paused. */
class Publisher {
  #running = false;
  #loop: Promise<void> = Promise.resolve();
  writes = 0;
  constructor(private readonly rng: Rng) {}
  start(): void {
    this.#running = true;
    this.#loop = (async () => {
      while (this.#running) {
        const key = `k.${this.rng.int(0, 63)}`;
        if (this.rng.next() < 0.15) await kv.writer.delete(key);
        else await kv.writer.put(key, new TextEncoder().encode(`${this.writes}.${"v".repeat(this.rng.int(0, 300))}`));
        this.writes++;
        await new Promise((r) => setTimeout(r, 2));
      }
    })();
  }
  async pause(): Promise<void> {
    this.#running = false;
    await this.#loop;
  }
}

beforeAll(async () => {
  server = await startNats();
  nc = await connect({ servers: server.url, timeoutMs: 5_000 });
  tmp = await tempDir("slipstream-crash-");
  kv = await nc.store(bucket);
  await nc.store({ name: "leases", history: 1 });
  blobsDir = join(tmp.path, "blobs");
  await mkdir(blobsDir, { recursive: true });
  transport = new ArtifactTransport(new FsBlobStore(blobsDir), { prefix: "artifacts" });
});
afterAll(async () => {
  await nc?.close();
  await server?.close();
  await tmp?.[Symbol.asyncDispose]();
});

function nodeConfig(id: string, extra: Partial<NodeConfig> = {}): NodeConfig {
  return {
    url: server.url,
    bucket,
    leases: "leases",
    blobsDir,
    key: "crash",
    foldDir: join(tmp.path, id, "fold"),
    scratchDir: join(tmp.path, id, "scratch"),
    id,
    ...extra,
  };
}

let pointer = 0n;
/** Temporary directories a killed node left behind that its restart did not remove. */
const leaked: string[] = [];

/** Restarts `cfg` (without fault delays), waits until it applied the whole bucket and compares. */
async function convergeAndCompare(cfg: NodeConfig, publisher: Publisher): Promise<void> {
  await publisher.pause();
  const node = new NodeProc({ ...cfg, delayMs: {}, autoExportMs: undefined });
  try {
    await node.readyLine();
    const last = (await kv.status()).lastSeq;
    await node.caughtUp(last);
    const d = await node.dump();
    expect(sortedValues(d), `${cfg.id} after restart equals the bucket`).toEqual(await bucketState(kv));
    pointer = await checkPointer(transport, "crash", join(tmp.path, "verify"), pointer);
    // Invariant 5 (artifacts are transient): a restart, an export round or a bootstrap
    // removes what a killed process left in its scratch dir and beside its fold.
    if (!cfg.bootstrap) expect(await node.exportRound(`sweep-${Date.now()}`)).toMatch(/^EXPORTED/);
    for (const dir of [cfg.scratchDir, dirname(cfg.foldDir)])
      for (const name of await leftovers(dir))
        if (!leaked.includes(`${cfg.id}: ${name}`)) leaked.push(`${cfg.id}: ${name}`);
    await node.stop();
  } catch (err) {
    throw new Error(`${(err as Error).message}\n${node.describe()}`, { cause: err });
  } finally {
    await node.kill();
    publisher.start();
  }
}

describe.skipIf(!hasNats())("crash campaign (SIGKILL of a node process)", () => {
  afterAll(() => {
    expect(leaked, "temporary directories left behind by killed nodes").toEqual([]);
  });
  it(`${KILLS} kills at random moments while a publisher writes and export rounds run`, async () => {
    const rng = new Rng(SEED);
    const publisher = new Publisher(rng);
    publisher.start();
    const cfg = nodeConfig("random", { autoExportMs: 150 });
    const phases: Record<string, number> = {};
    try {
      for (let i = 0; i < KILLS; i++) {
        const node = new NodeProc(cfg);
        await node.readyLine();
        await new Promise((r) => setTimeout(r, rng.int(50, 1500)));
        // Where the kill landed (the last phase the node announced).
        const last = [...node.lines]
          .reverse()
          .find((l) => l.startsWith("OP ") || l.startsWith("PHASE ") || l.startsWith("EXPORTED"));
        const where = !last || last.startsWith("EXPORTED") ? "between rounds" : last.split(" ").slice(0, 2).join(" ");
        phases[where] = (phases[where] ?? 0) + 1;
        await node.kill();
        await convergeAndCompare(cfg, publisher);
      }
    } finally {
      await publisher.pause();
    }
    console.log(
      `crash campaign: ${KILLS} random kills, ${publisher.writes} writes, last phase before the kill ${JSON.stringify(phases)}, leftover temp dirs ${(await leftovers(cfg.scratchDir)).length}`,
    );
    expect(pointer).toBeGreaterThan(0n);
  }, 1_800_000);

  /** Windows of an export round: the OP/PHASE line to wait for, and the delay that holds it open. */
  const exportWindows: { name: string; line: string; delay: Record<string, number> }[] = [
    { name: "export (LevelDB checkpoint)", line: "PHASE export-start", delay: {} },
    { name: "after export, before upload", line: "PHASE export", delay: { export: 300 } },
    { name: "payload upload", line: "OP put", delay: { put: 300 } },
    { name: "pointer publish", line: "OP conditionalPut", delay: { conditionalPut: 300 } },
    { name: "prune", line: "OP delete", delay: { delete: 300 } },
  ];

  it(`kills inside export, upload, pointer publish and prune (${WINDOW_ROUNDS} round(s) each)`, async () => {
    const rng = new Rng(SEED + 1);
    const publisher = new Publisher(rng);
    publisher.start();
    let kills = 0;
    try {
      for (let round = 0; round < WINDOW_ROUNDS; round++) {
        for (const w of exportWindows) {
          const cfg = nodeConfig(`window-${round}-${w.line.replace(/ /g, "-")}`, { delayMs: w.delay });
          const node = new NodeProc(cfg);
          await node.readyLine();
          let hit = false;
          // A round may not reach the window (e.g. nothing old enough to prune yet): retry.
          for (let attempt = 0; attempt < 6 && !hit; attempt++) {
            await node.caughtUp((await kv.status()).lastSeq - 5n);
            const from = node.lines.length;
            node.send(`EXPORT ${cfg.id}-${attempt} 50`);
            const seen = await node.waitLine(
              (l) => l.startsWith(w.line) || l.startsWith("EXPORTED ") || l.startsWith("EXPORT_FAILED "),
              60_000,
              from,
            );
            if (seen.startsWith(w.line)) {
              hit = true;
              await new Promise((r) => setTimeout(r, rng.int(0, 40)));
            } else {
              await new Promise((r) => setTimeout(r, 250)); // let payloads age past the prune grace
            }
          }
          expect(hit, `the round reached the ${w.name} window`).toBe(true);
          await node.kill();
          kills++;
          await convergeAndCompare(cfg, publisher);
        }
      }
    } finally {
      await publisher.pause();
    }
    expect(kills).toBe(WINDOW_ROUNDS * exportWindows.length);
  }, 1_800_000);

  const bootWindows: { name: string; line: string; delay: Record<string, number> }[] = [
    { name: "download", line: "OP get", delay: { get: 300 } },
    { name: "import", line: "PHASE import", delay: { import: 300 } },
    { name: "import (LevelDB staging)", line: "PHASE import", delay: {} },
  ];

  it(`kills inside download and import of a bootstrap (${WINDOW_ROUNDS} round(s) each)`, async () => {
    const rng = new Rng(SEED + 2);
    const publisher = new Publisher(rng);
    // A published artifact to bootstrap from.
    const seedNode = new NodeProc(nodeConfig("boot-source"));
    await seedNode.readyLine();
    publisher.start();
    await new Promise((r) => setTimeout(r, 300));
    expect(await seedNode.exportRound("boot-source")).toMatch(/^EXPORTED (published|superseded)/);
    await seedNode.stop();
    let kills = 0;
    try {
      for (let round = 0; round < WINDOW_ROUNDS; round++) {
        for (const w of bootWindows) {
          const cfg = nodeConfig(`boot-${round}-${kills}`, { bootstrap: true, delayMs: w.delay });
          const node = new NodeProc(cfg);
          await node.waitLine((l) => l.startsWith(w.line), 60_000);
          await new Promise((r) => setTimeout(r, rng.int(0, w.delay.get || w.delay.import ? 40 : 15)));
          await node.kill();
          kills++;
          // The restart imports again (nothing half-made at the fold path) or opens a complete fold.
          await convergeAndCompare(cfg, publisher);
        }
      }
    } finally {
      await publisher.pause();
    }
    expect(kills).toBe(WINDOW_ROUNDS * bootWindows.length);
  }, 1_800_000);
});
