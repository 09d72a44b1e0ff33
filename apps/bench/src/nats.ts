/**
 * A throwaway nats-server per benchmark, our connection and bucket beside a plain nats.js
 * connection for the raw baselines and for seeding.
 */
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { DeliverPolicy, type JetStreamClient, jetstream } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import { type NatsConnection as RawConnection, connect as rawConnect } from "@nats-io/transport-node";
import { connect, type NatsConnection, type NatsKvStore } from "@slipstream/nats";
import { type NatsServerHandle, startNats } from "@slipstream/testkit";
import { Level } from "level";
import { keyOf, valueFor } from "./data.js";

/** Writes kept in flight for a tail written through our writer. */
const TAIL_WINDOW = 200;

/** Everything a NATS benchmark needs; {@link NatsBench.close} tears it all down. */
export interface NatsBench extends AsyncDisposable {
  readonly server: NatsServerHandle;
  /** Our connection (`@slipstream/nats`). */
  readonly nc: NatsConnection;
  /** Our handle on the bucket. */
  readonly kv: NatsKvStore;
  /** A plain nats.js connection for baselines and bulk seeding. */
  readonly raw: RawConnection;
  readonly js: JetStreamClient;
  readonly bucket: string;
  /** The backing stream, `KV_<bucket>`. */
  readonly stream: string;
  close(): Promise<void>;
}

/**
 * Starts a nats-server (free loopback port, temp store dir), connects twice and creates a
 * history-1 bucket big enough for `entries` values of `valueBytes`.
 */
export async function openNats(opts: { bucket: string; entries: number; valueBytes: number }): Promise<NatsBench> {
  const server = await startNats();
  const closers: (() => Promise<void>)[] = [() => server.close()];
  const close = async (): Promise<void> => {
    for (const c of closers.splice(0).reverse()) await c().catch(() => undefined);
  };
  try {
    const nc = await connect({ servers: server.url, name: "slipstream-bench" });
    closers.push(() => nc.close());
    const maxBytes = Math.max(64 * 1024 * 1024, opts.entries * (opts.valueBytes + 256) * 2);
    const kv = await nc.store({ name: opts.bucket, history: 1, maxBytes });
    const raw = await rawConnect({ servers: server.url, name: "slipstream-bench-raw" });
    closers.push(() => raw.close());
    const js = jetstream(raw);
    return {
      server,
      nc,
      kv,
      raw,
      js,
      bucket: opts.bucket,
      stream: `KV_${opts.bucket}`,
      close,
      [Symbol.asyncDispose]: close,
    };
  } catch (err) {
    await close();
    throw err;
  }
}

/** Publishes kept in flight while seeding in this process (the async-publish limit is near). */
const SEED_WINDOW = 2000;

/**
 * Seeds entries `0..entries-1` (distinct keys, so a state-sync delivers all of them) with
 * plain JetStream publishes. Not timed as part of any figure. From the built benchmarks it
 * runs in a child process (`seed-child.js`), so its memory (thousands of publishes in
 * flight) is not counted in this process's RSS; from sources (tests) it runs in-process.
 * @returns the bucket's last sequence afterwards
 */
export async function seed(b: NatsBench, entries: number, valueBytes: number): Promise<bigint> {
  const script = fileURLToPath(new URL("./seed-child.js", import.meta.url));
  if (existsSync(script)) {
    await new Promise<void>((resolve, reject) => {
      const child = spawn(process.execPath, [script, b.server.url, b.bucket, String(entries), String(valueBytes)], {
        stdio: ["ignore", "inherit", "inherit"],
      });
      child.on("error", reject);
      child.on("exit", (code, signal) =>
        code === 0 ? resolve() : reject(new Error(`seeding process exited (${signal ?? code})`)),
      );
    });
  } else {
    const subject = `$KV.${b.bucket}.`;
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < entries) {
        const i = next++;
        await b.js.publish(subject + keyOf(i), valueFor(i, valueBytes));
      }
    };
    await Promise.all(Array.from({ length: SEED_WINDOW }, worker));
  }
  return (await b.kv.status()).lastSeq;
}

/**
 * Writes a tail of `count` changes through our writer, each to a different existing key so
 * that each one stays a separate message (history 1 would otherwise drop the earlier one):
 * puts to entries `0, 1, …` and, for every tenth change, a delete of entries from the end.
 * @returns how many puts and deletes were written, and the bucket's last sequence
 */
export async function writeTail(
  b: NatsBench,
  entries: number,
  count: number,
  valueBytes: number,
): Promise<{ puts: number; deletes: number; head: bigint }> {
  const deletes = Math.floor(count / 10);
  const puts = count - deletes;
  if (puts + deletes > entries) throw new Error(`a tail of ${count} needs at least ${count} entries`);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < count) {
      const n = next++;
      if (n < puts) await b.kv.writer.put(keyOf(n), valueFor(n, valueBytes, 1));
      else await b.kv.writer.delete(keyOf(entries - 1 - (n - puts)));
    }
  };
  await Promise.all(Array.from({ length: Math.min(TAIL_WINDOW, Math.max(1, count)) }, worker));
  return { puts, deletes, head: (await b.kv.status()).lastSeq };
}

/** Messages per pull of the tuned raw consumer (the default `consume()` pulls 100). */
export const RAW_PULL = 5000;

/**
 * Raw baseline: a plain nats.js ordered consumer (deliver all) drains the stream up to
 * `head` with `consume()`, either with its default pull size or with `maxMessages` per pull.
 * @returns messages received and the time from consumer creation to the last one (ms)
 */
export async function rawOrderedDrain(
  b: NatsBench,
  head: bigint,
  maxMessages?: number,
): Promise<{ messages: number; ms: number; cpuUs: number }> {
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  const consumer = await b.js.consumers.get(b.stream, { deliver_policy: DeliverPolicy.All });
  const messages = await consumer.consume(maxMessages === undefined ? undefined : { max_messages: maxMessages });
  let n = 0;
  for await (const m of messages) {
    n++;
    if (BigInt(m.seq) >= head) break;
  }
  const ms = performance.now() - t0;
  const c = process.cpuUsage(c0);
  return { messages: n, ms, cpuUs: c.user + c.system };
}

/** Messages per raw `level` batch in {@link rawFoldCeiling} (the fold's batch in the benchmarks). */
const RAW_FOLD_BATCH = 1000;

/**
 * The fold's raw ceiling: the raw drain above ({@link RAW_PULL} per pull) writing every
 * {@link RAW_FOLD_BATCH} messages into a fresh raw `level` database (classic-level defaults)
 * as one `batch()` of puts (key = subject, value = payload), one batch being written while
 * the next one fills, as a fold pipelines. No cursor, count, versions or lookups: what the
 * two libraries alone cost when composed, the figure a fold could reach with zero overhead.
 * @returns messages received and the time from consumer creation to the last write (ms)
 */
export async function rawFoldCeiling(
  b: Pick<NatsBench, "js" | "stream">,
  head: bigint,
  dir: string,
): Promise<{ messages: number; ms: number; cpuUs: number }> {
  const db = new Level<string, Uint8Array>(dir, { valueEncoding: "view" });
  await db.open();
  const last = Number(head);
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  const consumer = await b.js.consumers.get(b.stream, { deliver_policy: DeliverPolicy.All });
  const messages = await consumer.consume({ max_messages: RAW_PULL });
  let n = 0;
  let ops: { type: "put"; key: string; value: Uint8Array }[] = [];
  let writing: Promise<void> | undefined;
  for await (const m of messages) {
    n++;
    ops.push({ type: "put", key: m.subject, value: m.data });
    const done = m.seq >= last;
    if (ops.length >= RAW_FOLD_BATCH || done) {
      await writing;
      writing = db.batch(ops);
      ops = [];
    }
    if (done) break;
  }
  await writing;
  const ms = performance.now() - t0;
  const c = process.cpuUsage(c0);
  await db.close();
  return { messages: n, ms, cpuUs: c.user + c.system };
}

/**
 * Second raw figure: nats.js `kv.watch()` (its state-sync: last value per key) up to `head`.
 * @returns entries received and the time from the watch call to the last one (ms)
 */
export async function rawKvWatch(b: NatsBench, head: bigint): Promise<{ messages: number; ms: number }> {
  const t0 = performance.now();
  const kv = await new Kvm(b.js).open(b.bucket);
  const iter = await kv.watch({ key: ">" });
  let n = 0;
  for await (const e of iter) {
    n++;
    if (BigInt(e.revision) >= head) break;
  }
  iter.stop();
  return { messages: n, ms: performance.now() - t0 };
}
