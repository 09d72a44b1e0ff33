/**
 * The campaign's tools: child node processes, a plain in-memory model of the bucket and
 * its checks, a seeded generator, and a TCP proxy that injects partitions.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdir, mkdtemp, readdir, rm } from "node:fs/promises";
import { createServer, type Server, type Socket, connect as tcpConnect } from "node:net";
import { join } from "node:path";
import type { ExportManifest } from "@slipstream/core";
import type { NatsKvStore, StoreConfig } from "@slipstream/nats";
import { repoRoot, waitFor } from "@slipstream/testkit";
import type { ArtifactTransport } from "@slipstream/transport";

/** Whether the long campaign runs (`SLIPSTREAM_LONG=1`). */
export const LONG = process.env.SLIPSTREAM_LONG === "1";

// ---------------------------------------------------------------------------
// Seeded randomness

/** A small seeded PRNG (mulberry32): the same seed gives the same operation sequence. */
export class Rng {
  #s: number;
  constructor(seed: number) {
    this.#s = seed >>> 0;
  }
  /** A float in [0, 1). */
  next(): number {
    this.#s = (this.#s + 0x6d2b79f5) >>> 0;
    let t = this.#s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  /** An integer in [lo, hi]. */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }
  pick<T>(xs: readonly T[]): T {
    return xs[Math.floor(this.next() * xs.length)] as T;
  }
  /** Picks a name by weight. */
  weighted<K extends string>(w: Record<K, number>): K {
    const entries = Object.entries(w) as [K, number][];
    let r = this.next() * entries.reduce((a, [, n]) => a + n, 0);
    for (const [k, n] of entries) {
      r -= n;
      if (r < 0) return k;
    }
    return (entries.at(-1) as [K, number])[0];
  }
}

/** Seeds to run: `SLIPSTREAM_SEED` alone when set (exact replay), else `count` seeds from `base`. */
export function seeds(count: number, base: number): number[] {
  const one = process.env.SLIPSTREAM_SEED;
  if (one !== undefined && one !== "") return [Number(one)];
  return Array.from({ length: count }, (_, i) => base + i);
}

// ---------------------------------------------------------------------------
// The model

interface Record_ {
  rev: bigint;
  key: string;
  /** undefined = delete or purge */
  value: string | undefined;
}

/** A plain model of a KV bucket: every write with its revision, and the live state. */
export class Model {
  readonly history: Record_[] = [];
  readonly #latest = new Map<string, Record_>();

  record(rev: bigint, key: string, value: string | undefined): void {
    const r = { rev, key, value };
    this.history.push(r);
    const prev = this.#latest.get(key);
    if (!prev || prev.rev < rev) this.#latest.set(key, r);
  }

  /**
   * The live bucket: the latest record of each key, when it is a put that the bucket still
   * retains (revision ≥ the stream's first sequence; a bounded log evicts from its head).
   */
  live(firstSeq: bigint): Map<string, string> {
    const out = new Map<string, string>();
    for (const [k, r] of this.#latest) if (r.value !== undefined && r.rev >= firstSeq) out.set(k, r.value);
    return new Map([...out].sort(([a], [b]) => (a < b ? -1 : 1)));
  }

  /** The latest record of each key at or below `rev`. */
  at(rev: bigint): Map<string, Record_> {
    const out = new Map<string, Record_>();
    for (const r of this.history) {
      if (r.rev > rev) continue;
      const prev = out.get(r.key);
      if (!prev || prev.rev < r.rev) out.set(r.key, r);
    }
    return out;
  }

  put(rev: bigint, key: string): Record_ | undefined {
    return this.history.find((r) => r.rev === rev && r.key === key);
  }
}

/** What a node printed for `DUMP`: its cursor, then its entries (read after the cursor). */
export interface Dump {
  cursor: bigint;
  entries: Map<string, { value: string; rev: bigint }>;
}

export function sortedValues(d: Dump): Map<string, string> {
  return new Map([...d.entries].map(([k, e]) => [k, e.value] as [string, string]).sort(([a], [b]) => (a < b ? -1 : 1)));
}

/**
 * Invariant 1/2 on a fold, caught up or not: every entry is a put the bucket really had,
 * and the cursor claims nothing the fold lacks — for each key whose latest write at or
 * below the cursor is still retained, the fold holds that write or a newer one (a put), or
 * (a delete) holds no older put. Data may be ahead of the cursor, never behind it.
 * Returns the problems found (empty = fine).
 */
export function cursorProblems(d: Dump, model: Model, firstSeq: bigint): string[] {
  const problems: string[] = [];
  for (const [key, e] of d.entries) {
    const r = model.put(e.rev, key);
    if (!r || r.value !== e.value) problems.push(`fold holds ${key}@${e.rev}=${e.value}, which the bucket never had`);
  }
  for (const [key, r] of model.at(d.cursor)) {
    if (r.rev < firstSeq) continue; // evicted: a resync may have dropped it legitimately
    const e = d.entries.get(key);
    if (r.value !== undefined && (!e || e.rev < r.rev))
      problems.push(`cursor ${d.cursor} claims ${key}@${r.rev} but the fold has ${e ? `@${e.rev}` : "nothing"}`);
    if (r.value === undefined && e && e.rev < r.rev)
      problems.push(`cursor ${d.cursor} claims the delete of ${key}@${r.rev} but the fold still has @${e.rev}`);
  }
  return problems;
}

// ---------------------------------------------------------------------------
// Node processes

/** Configuration of one child node (see fixtures/node.ts). */
export interface NodeConfig {
  url: string;
  bucket: StoreConfig;
  leases: string;
  blobsDir: string;
  key: string;
  foldDir: string;
  scratchDir: string;
  id: string;
  bootstrap?: boolean;
  autoExportMs?: number;
  delayMs?: Record<string, number>;
  rssEveryMs?: number;
  batchMax?: number;
}

const NODE_SCRIPT = join(repoRoot(), "packages/reliability/test/fixtures/node.ts");

/** A running child node: its output lines, its latest reported cursor, SIGKILL, dump. */
export class NodeProc {
  readonly lines: string[] = [];
  readonly child: ChildProcess;
  readonly exited: Promise<number | null>;
  cursor = 0n;
  ready: string | undefined;
  #stderr = "";
  #waiters: (() => void)[] = [];

  constructor(readonly cfg: NodeConfig) {
    this.child = spawn(process.execPath, ["--conditions=@slipstream/source", "--import", "tsx", NODE_SCRIPT], {
      cwd: repoRoot(),
      env: { ...process.env, SLIPSTREAM_NODE: JSON.stringify(cfg) },
      stdio: ["pipe", "pipe", "pipe"],
    });
    let buf = "";
    this.child.stdout?.on("data", (d: Buffer) => {
      buf += d.toString();
      const parts = buf.split("\n");
      buf = parts.pop() ?? "";
      for (const l of parts) this.#line(l);
    });
    this.child.stderr?.on("data", (d: Buffer) => {
      this.#stderr = (this.#stderr + d.toString()).slice(-4000);
    });
    this.child.stdin?.on("error", () => {});
    this.exited = new Promise((resolve) => this.child.once("exit", (code) => resolve(code)));
    void this.exited.then(() => this.#wake());
  }

  #line(l: string): void {
    this.lines.push(l);
    if (this.lines.length > 5000) this.lines.splice(0, 2500);
    if (l.startsWith("CURSOR ")) {
      const c = BigInt(l.slice(7));
      if (c > this.cursor) this.cursor = c;
    } else if (l.startsWith("READY ")) {
      this.ready = l;
      const c = l.split(" ")[1];
      if (c && c !== "none") this.cursor = BigInt(c);
    }
    this.#wake();
  }

  #wake(): void {
    for (const w of this.#waiters.splice(0)) w();
  }

  get alive(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Recent output and stderr, for failure messages. */
  describe(): string {
    return `${this.cfg.id}: ${this.lines
      .filter((l) => !l.startsWith("OP "))
      .slice(-12)
      .map((l) => l.slice(0, 300))
      .join(" | ")}${this.#stderr ? ` STDERR ${this.#stderr.slice(-1500)}` : ""}`;
  }

  /** Waits for an output line matching `pred` (seen from index `from` on). */
  async waitLine(pred: (l: string) => boolean, timeoutMs: number, from = 0): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    let i = from;
    for (;;) {
      for (; i < this.lines.length; i++) if (pred(this.lines[i] as string)) return this.lines[i] as string;
      if (!this.alive) throw new Error(`node exited while waiting: ${this.describe()}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`node output not seen within ${timeoutMs} ms: ${this.describe()}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, Math.min(left, 250));
        this.#waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
      if (this.lines.length < i) i = 0; // trimmed
    }
  }

  send(cmd: string): void {
    this.child.stdin?.write(`${cmd}\n`);
  }

  async readyLine(timeoutMs = 60_000): Promise<string> {
    return this.waitLine((l) => l.startsWith("READY "), timeoutMs);
  }

  async caughtUp(rev: bigint, timeoutMs = 30_000): Promise<void> {
    if (this.cursor >= rev) return;
    await this.waitLine(() => this.cursor >= rev, timeoutMs, this.lines.length);
  }

  async dump(timeoutMs = 30_000): Promise<Dump> {
    const from = this.lines.length;
    this.send("DUMP");
    const l = await this.waitLine((x) => x.startsWith("DUMP "), timeoutMs, from);
    const j = JSON.parse(l.slice(5)) as { cursor: string; entries: [string, string, string][] };
    return {
      cursor: BigInt(j.cursor),
      entries: new Map(j.entries.map(([k, v, r]) => [k, { value: v, rev: BigInt(r) }])),
    };
  }

  /** Asks for one export round under `leaseKey`; resolves with the EXPORTED/EXPORT_FAILED line. */
  async exportRound(leaseKey: string, ttlMs = 60_000, timeoutMs = 60_000): Promise<string> {
    const from = this.lines.length;
    this.send(`EXPORT ${leaseKey} ${ttlMs}`);
    return this.waitLine((l) => l.startsWith("EXPORTED ") || l.startsWith("EXPORT_FAILED "), timeoutMs, from);
  }

  async kill(): Promise<void> {
    if (this.alive) this.child.kill("SIGKILL");
    await this.exited;
  }

  /** Graceful stop (watch.stop + store.close); SIGKILL if it does not stop in time. */
  async stop(timeoutMs = 30_000): Promise<void> {
    if (!this.alive) return;
    this.send("STOP");
    const t = setTimeout(() => this.child.kill("SIGKILL"), timeoutMs);
    await this.exited;
    clearTimeout(t);
  }
}

// ---------------------------------------------------------------------------
// Bucket helpers

const text = new TextDecoder();

/** The live bucket as key → value text, sorted. */
export async function bucketState(kv: NatsKvStore): Promise<Map<string, string>> {
  const out: [string, string][] = [];
  for await (const e of kv.reader.scan()) out.push([e.key, text.decode(e.value)]);
  return new Map(out.sort(([a], [b]) => (a < b ? -1 : 1)));
}

/** Retries a write until the connection is back (only for idempotent reads and status). */
export async function retrying<T>(f: () => Promise<T>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await f();
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

/**
 * Invariant 6 on the published pointer: it names a complete, verifiable artifact (the
 * download re-checks every hash) and its cursor never goes below `previous`. Returns the
 * pointer's cursor (or `previous` when nothing is published yet).
 */
export async function checkPointer(transport: ArtifactTransport, key: string, scratch: string, previous: bigint) {
  let m: ExportManifest;
  try {
    m = await transport.manifest(key);
  } catch (err) {
    if (previous === 0n) return previous;
    throw new Error(`the pointer vanished after it named ${previous}`, { cause: err });
  }
  const rev = m.cursor.revision ?? 0n;
  if (rev < previous) throw new Error(`the published pointer regressed from ${previous} to ${rev}`);
  await mkdir(scratch, { recursive: true });
  const dir = await mkdtemp(join(scratch, "verify-"));
  try {
    const got = await transport.download(key, join(dir, "a"));
    // A newer round may have published meanwhile; never an older one.
    if ((got.cursor.revision ?? 0n) < rev) throw new Error(`downloaded ${got.cursor.revision} < pointer ${rev}`);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  return rev;
}

/** Names of the leftover temporary directories in `dir` (a crash may leave them). */
export async function leftovers(dir: string): Promise<string[]> {
  try {
    return (await readdir(dir)).filter((n) => n.startsWith(".slipstream-"));
  } catch {
    return [];
  }
}

export { waitFor };

// ---------------------------------------------------------------------------
// Partitions

/**
 * A TCP proxy for fault injection between a client and a server: `stall()` stops
 * forwarding in both directions (the sockets stay open, like a black-holed link),
 * `drop()` destroys every proxied socket, `heal()` forwards again. While stalled, new
 * connections are accepted and held.
 */
export class TcpProxy {
  readonly #server: Server;
  readonly #pairs = new Set<[Socket, Socket]>();
  #stalled = false;
  port = 0;

  private constructor(targetPort: number) {
    this.#server = createServer((client) => {
      const upstream = tcpConnect({ host: "127.0.0.1", port: targetPort });
      const pair: [Socket, Socket] = [client, upstream];
      this.#pairs.add(pair);
      const close = () => {
        client.destroy();
        upstream.destroy();
        this.#pairs.delete(pair);
      };
      for (const s of pair) {
        s.on("error", close);
        s.on("close", close);
      }
      client.pipe(upstream);
      upstream.pipe(client);
      if (this.#stalled) this.#pause(pair);
    });
  }

  static async start(targetPort: number): Promise<TcpProxy> {
    const p = new TcpProxy(targetPort);
    await new Promise<void>((resolve) => p.#server.listen(0, "127.0.0.1", resolve));
    p.port = (p.#server.address() as { port: number }).port;
    return p;
  }

  get url(): string {
    return `nats://127.0.0.1:${this.port}`;
  }

  get connections(): number {
    return this.#pairs.size;
  }

  #pause(pair: [Socket, Socket]): void {
    for (const s of pair) {
      s.unpipe();
      s.pause();
    }
  }

  stall(): void {
    this.#stalled = true;
    for (const p of this.#pairs) this.#pause(p);
  }

  drop(): void {
    for (const [a, b] of [...this.#pairs]) {
      a.destroy();
      b.destroy();
    }
    this.#pairs.clear();
  }

  heal(): void {
    this.#stalled = false;
    for (const [a, b] of this.#pairs) {
      a.pipe(b);
      b.pipe(a);
      a.resume();
      b.resume();
    }
  }

  async close(): Promise<void> {
    this.drop();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}
