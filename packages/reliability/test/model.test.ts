/**
 * Randomized model test: a seeded generator of operations against real processes (a
 * nats-server, child nodes folding into LevelDB, export rounds and bootstraps through the
 * filesystem transport), checked after every step against a plain in-memory model.
 *
 * A failure names its seed; `SLIPSTREAM_SEED=<n>` replays exactly that operation sequence.
 * `SLIPSTREAM_LONG=1` runs hundreds of seeds (`SLIPSTREAM_SEEDS` / `SLIPSTREAM_STEPS` size it).
 */
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { connect, type StoreConfig } from "@slipstream/nats";
import { hasNats, natsMissingReason, startNats, tempDir } from "@slipstream/testkit";
import { ArtifactTransport } from "@slipstream/transport";
import { FsBlobStore } from "@slipstream/transport-fs";
import { describe, expect, it } from "vitest";
import {
  bucketState,
  checkPointer,
  cursorProblems,
  type Dump,
  LONG,
  Model,
  NodeProc,
  Rng,
  retrying,
  seeds,
} from "./harness.js";

const SEEDS = Number(process.env.SLIPSTREAM_SEEDS ?? (LONG ? 200 : 2));
const STEPS = Number(process.env.SLIPSTREAM_STEPS ?? (LONG ? 30 : 14));
const KEYS = 24;
const BULK = 40;

/**
 * A fold converged to the model: every key the bucket still retains is exactly in the fold
 * (or absent when deleted); a key whose last write was evicted by the bucket's limits may
 * be absent or hold exactly that write (NATS reports no eviction to a running watch, so
 * only a node that resynced drops it — folds are then the only replicas, invariant 3).
 */
function convergenceProblems(d: Dump, model: Model, firstSeq: bigint, lastSeq: bigint): string[] {
  const problems = cursorProblems(d, model, firstSeq);
  if (d.cursor < lastSeq) problems.push(`cursor ${d.cursor} below the bucket's last revision ${lastSeq}`);
  for (const [key, r] of model.at(lastSeq)) {
    const e = d.entries.get(key);
    if (r.rev >= firstSeq) {
      if (r.value === undefined && e) problems.push(`${key} was deleted @${r.rev}, fold has @${e.rev}`);
      if (r.value !== undefined && (!e || e.rev !== r.rev || e.value !== r.value))
        problems.push(`${key}@${r.rev} expected, fold has ${e ? `@${e.rev}` : "nothing"}`);
    } else if (e && (r.value === undefined || e.rev !== r.rev)) {
      problems.push(
        `evicted ${key}: fold has @${e.rev}, last write was @${r.rev}${r.value === undefined ? " (delete)" : ""}`,
      );
    }
  }
  for (const key of d.entries.keys()) if (!model.at(lastSeq).has(key)) problems.push(`fold has unknown key ${key}`);
  return problems;
}

interface Slot {
  node: NodeProc | undefined;
  /** Steps left before a killed node is restarted. */
  downFor: number;
  cfg: NodeProc["cfg"];
}

async function runSeed(seed: number, steps: number): Promise<{ ops: Record<string, number> }> {
  const rng = new Rng(seed);
  await using tmp = await tempDir(`slipstream-model-${seed}-`);
  await using server = await startNats();
  const nc = await connect({ servers: server.url, reconnectTimeWaitMs: 100, timeoutMs: 5_000 });
  const bucket: StoreConfig = { name: "model", history: 1, maxBytes: 16 * 1024, discard: "old" };
  const kv = await nc.store(bucket);
  await nc.store({ name: "leases", history: 1 });
  const blobsDir = join(tmp.path, "blobs");
  await mkdir(blobsDir, { recursive: true });
  const transport = new ArtifactTransport(new FsBlobStore(blobsDir), { prefix: "artifacts" });
  const model = new Model();
  const log: string[] = [];
  const ops: Record<string, number> = {};
  let pointer = 0n;
  let nodeCount = 0;

  const newCfg = (bootstrap: boolean): Slot["cfg"] => {
    const id = `node-${nodeCount++}`;
    return {
      url: server.url,
      bucket,
      leases: "leases",
      blobsDir,
      key: "model",
      foldDir: join(tmp.path, id, "fold"),
      scratchDir: join(tmp.path, id, "scratch"),
      id,
      bootstrap,
      batchMax: rng.pick([1, 7, 64]),
    };
  };
  const slots: Slot[] = [];
  const startSlot = async (s: Slot) => {
    s.node = new NodeProc(s.cfg);
    await s.node.readyLine();
  };
  try {
    for (let i = 0; i < 2; i++) {
      const s: Slot = { node: undefined, downFor: 0, cfg: newCfg(false) };
      slots.push(s);
      await startSlot(s);
    }

    const write = async (step: number) => {
      const n = rng.int(1, 6);
      for (let j = 0; j < n; j++) {
        const key = `k.${rng.int(0, KEYS - 1)}`;
        const kind = rng.weighted({ put: 70, delete: 20, purge: 10 });
        if (kind === "put") {
          const value = `${seed}.${step}.${j}.${"x".repeat(rng.int(0, 200))}`;
          const v = await kv.writer.put(key, new TextEncoder().encode(value));
          model.record(v.revision ?? 0n, key, value);
        } else {
          if (kind === "delete") await kv.writer.delete(key);
          else await kv.writer.purge(key);
          // One writer on this bucket: its last sequence is this marker's revision.
          model.record((await kv.status()).lastSeq, key, undefined);
        }
      }
      return `write×${n}`;
    };

    for (let step = 0; step < steps; step++) {
      for (const s of slots) {
        if (!s.node && s.downFor-- <= 0) {
          await startSlot(s);
          // Recovered state right after the crash: the cursor claims nothing the fold lacks.
          const d = await s.node!.dump();
          const st = await kv.status();
          const p = cursorProblems(d, model, st.firstSeq);
          if (p.length) throw new Error(`after restart of ${s.cfg.id}: ${p.join("; ")}`);
        }
      }
      const running = slots.filter((s) => s.node);
      const op = rng.weighted({
        write: 40,
        evict: 8,
        killNode: 12,
        restartNode: 3,
        killServer: 5,
        export: 12,
        bootstrap: 6,
        prune: 4,
      });
      ops[op] = (ops[op] ?? 0) + 1;
      let what: string = op;
      if (op === "write") what = await write(step);
      else if (op === "evict") {
        // Fill the bounded log: the head (old k.* writes among them) is evicted.
        for (let i = 0; i < BULK; i++) {
          const value = `${seed}.${step}.bulk.${"y".repeat(400)}`;
          const v = await kv.writer.put(`bulk.${i}`, new TextEncoder().encode(value));
          model.record(v.revision ?? 0n, `bulk.${i}`, value);
        }
        what = `evict (first ${(await kv.status()).firstSeq})`;
      } else if (op === "killNode" && running.length) {
        const s = rng.pick(running);
        await s.node!.kill();
        s.node = undefined;
        s.downFor = rng.int(0, 3);
        what = `kill ${s.cfg.id} (down ${s.downFor})`;
        if (rng.next() < 0.5) what += ` + ${await write(step)}`;
      } else if (op === "restartNode" && running.length) {
        const s = rng.pick(running);
        await s.node!.stop();
        await startSlot(s);
        what = `restart ${s.cfg.id}`;
      } else if (op === "killServer") {
        await server.kill();
        await server.restart();
        await retrying(() => kv.status());
      } else if (op === "export" && running.length) {
        const s = rng.pick(running);
        const line = await s.node!.exportRound(`round-${step}`);
        what = `export on ${s.cfg.id}: ${line}`;
        if (!line.startsWith("EXPORTED published") && !line.startsWith("EXPORTED superseded"))
          throw new Error(`export round failed: ${line}`);
        pointer = await checkPointer(transport, "model", join(tmp.path, "verify"), pointer);
      } else if (op === "bootstrap" && pointer > 0n) {
        const s: Slot = { node: undefined, downFor: 0, cfg: newCfg(true) };
        await startSlot(s);
        const ready = s.node!.ready ?? "";
        what = `bootstrap ${s.cfg.id}: ${ready}`;
        if (!ready.endsWith(" imported")) throw new Error(`bootstrap did not import: ${ready}`);
        if (BigInt(ready.split(" ")[1] as string) < pointer) throw new Error(`bootstrap below the pointer: ${ready}`);
        slots.push(s);
        if (slots.length > 3) {
          const old = slots.splice(1, 1)[0] as Slot;
          await old.node?.stop();
        }
      } else if (op === "prune") {
        const removed = await transport.prune("model", 0);
        what = `prune (${removed.length} removed)`;
        pointer = await checkPointer(transport, "model", join(tmp.path, "verify"), pointer);
      } else {
        what = `${op} (nothing to do)`;
      }
      log.push(`${step}: ${what}`);

      // Check: the model against the bucket, then every running fold against the model.
      const st = await retrying(() => kv.status());
      const live = model.live(st.firstSeq);
      const scanned = await bucketState(kv);
      if (JSON.stringify([...scanned]) !== JSON.stringify([...live]))
        throw new Error(`the bucket differs from the model (first ${st.firstSeq}, last ${st.lastSeq})`);
      for (const s of slots) {
        if (!s.node) continue;
        await s.node.caughtUp(st.lastSeq);
        const d = await s.node.dump();
        const p = convergenceProblems(d, model, st.firstSeq, st.lastSeq);
        if (p.length) throw new Error(`${s.cfg.id} after step ${step}: ${p.slice(0, 8).join("; ")}`);
      }
    }
    return { ops };
  } catch (err) {
    const nodes = slots.map((s) => s.node?.describe() ?? `${s.cfg.id}: down`).join("\n  ");
    throw new Error(
      `seed ${seed} failed (replay: SLIPSTREAM_SEED=${seed} SLIPSTREAM_STEPS=${steps}): ${(err as Error).message}\n` +
        `operations:\n  ${log.join("\n  ")}\nnodes:\n  ${nodes}`,
      { cause: err },
    );
  } finally {
    for (const s of slots) await s.node?.kill();
    await nc.close();
  }
}

describe.skipIf(!hasNats())(`randomized model test ${natsMissingReason() ?? ""}`, () => {
  const totals: Record<string, number> = {};
  for (const seed of seeds(SEEDS, 1000)) {
    it(`seed ${seed}: ${STEPS} steps`, async () => {
      const { ops } = await runSeed(seed, STEPS);
      for (const [k, n] of Object.entries(ops)) totals[k] = (totals[k] ?? 0) + n;
      expect(Object.values(ops).reduce((a, b) => a + b, 0)).toBe(STEPS);
    }, 600_000);
  }
  it("reports the operation counts", () => {
    console.log(`model test: ${SEEDS} seed(s) × ${STEPS} steps, operations ${JSON.stringify(totals)}`);
    expect(Object.keys(totals).length).toBeGreaterThan(0);
  });
});
