import { readdir } from "node:fs/promises";
import { Writable } from "node:stream";
import { type CliIo, run } from "@slipstream/cli";
import { type KvUpdate, VersionToken, WatchCursor } from "@slipstream/core";
import type { NatsKvStore } from "@slipstream/nats";
import { LevelSnapshotStore } from "@slipstream/snapshot-leveldb";

/** The outcome of one CLI run. */
export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
  /** stdout parsed as JSON (throws when it is not). */
  json<T = Record<string, unknown>>(): T;
}

class Collect extends Writable {
  chunks: Buffer[] = [];
  override _write(chunk: Buffer | string, _enc: BufferEncoding, cb: () => void): void {
    this.chunks.push(Buffer.from(chunk));
    cb();
  }
  text(): string {
    return Buffer.concat(this.chunks).toString("utf8");
  }
}

/** Runs `slipstream …args` in-process with the given environment. */
export async function cli(
  args: string[],
  opts: { env?: Record<string, string | undefined>; isTTY?: boolean; signal?: AbortSignal } = {},
): Promise<CliResult> {
  const stdout = new Collect();
  const stderr = new Collect();
  const io: CliIo = {
    stdout,
    stderr,
    env: opts.env ?? {},
    isTTY: opts.isTTY ?? false,
    ...(opts.signal ? { signal: opts.signal } : {}),
  };
  const code = await run(args, io);
  const out = stdout.text();
  return {
    code,
    stdout: out,
    stderr: stderr.text(),
    json: <T>() => JSON.parse(out) as T,
  };
}

/** The raw bytes written to stdout by a run (for --raw). */
export async function cliBytes(args: string[]): Promise<{ code: number; bytes: Buffer }> {
  const stdout = new Collect();
  const code = await run(args, { stdout, stderr: new Collect(), env: {}, isTTY: false });
  return { code, bytes: Buffer.concat(stdout.chunks) };
}

const enc = new TextEncoder();

/** A put update at `rev`. */
export function put(key: string, value: string | Uint8Array, rev: bigint): KvUpdate {
  return {
    type: "put",
    entry: {
      key,
      value: typeof value === "string" ? enc.encode(value) : value,
      version: VersionToken.fromRevision(rev),
    },
  };
}

/** Creates a LevelDB fold at `dir` holding `updates` (cursor = the last revision, or `cursor`). */
export async function makeFold(dir: string, updates: KvUpdate[], cursor?: bigint): Promise<void> {
  const store = await LevelSnapshotStore.open(dir);
  const last =
    cursor ??
    updates.reduce((m, u) => {
      const r = u.type === "put" ? u.entry.version.revision : u.version.revision;
      return r !== undefined && r > m ? r : m;
    }, 0n);
  await store.apply(updates, WatchCursor.fromRevision(last));
  await store.close();
}

/** `n` route keys `route.<i>` with values `v<i>` at revisions 1..n. */
export function routes(n: number, from = 1): KvUpdate[] {
  const out: KvUpdate[] = [];
  for (let i = from; i < from + n; i++) out.push(put(`route.${String(i).padStart(4, "0")}`, `v${i}`, BigInt(i)));
  return out;
}

/** A sorted recursive listing of `dir` (names and sizes), to assert "nothing changed". */
export async function snapshotDir(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string, rel: string) => {
    let entries: import("node:fs").Dirent[];
    try {
      entries = await readdir(d, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      out.push(r);
      if (e.isDirectory()) await walk(`${d}/${e.name}`, r);
    }
  };
  await walk(dir, "");
  return out.sort();
}

/** Writes a LevelDB fold of the bucket's current state at `dir`, at its last sequence; returns that sequence. */
export async function foldOf(kv: NatsKvStore, dir: string): Promise<bigint> {
  const status = await kv.status();
  const batch: KvUpdate[] = [];
  for await (const e of kv.reader.scan("")) batch.push({ type: "put", entry: e });
  const store = await LevelSnapshotStore.open(dir);
  await store.apply(batch, WatchCursor.fromRevision(status.lastSeq));
  await store.close();
  return status.lastSeq;
}
