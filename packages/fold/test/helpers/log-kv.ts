/**
 * Test double: an in-process KV log with NATS-like watch semantics, for unit tests of
 * batching, ordering, resync and re-subscribe edge cases. (The real thing is exercised
 * against nats-server in watch-applied.nats.test.ts.)
 *
 * - state-sync (no cursor): the latest message per key in revision order (delete markers
 *   included), then live;
 * - resume (`from`): every message after the cursor, then live; `CURSOR_EXPIRED` when the
 *   log no longer holds revision + 1;
 * - faults: end or fail every open watch, fail `keys()`.
 */

import type { KvEntry, KvReader, KvUpdate, KvWatcher, OpOptions, WatchOptions, WatchScope } from "@slipstream/core";
import { SlipstreamError, scopeContains, VersionToken, type WatchCursor } from "@slipstream/core";

interface Msg {
  seq: bigint;
  key: string;
  op: "put" | "delete" | "purge";
  value: Uint8Array;
}

function toUpdate(m: Msg): KvUpdate {
  const version = VersionToken.fromRevision(m.seq);
  return m.op === "put"
    ? { type: "put", entry: { key: m.key, value: m.value, version } }
    : { type: m.op, key: m.key, version };
}

type Item = { update: KvUpdate } | { end: true } | { error: unknown } | { relisted: true };

class Feed {
  items: Item[] = [];
  head = 0;
  waiter: (() => void) | undefined;
  closed = false;
  /** Updates handed to the consumer so far. */
  delivered = 0;
  constructor(
    readonly scope: WatchScope,
    readonly from: WatchCursor | undefined,
  ) {}
  push(item: Item): void {
    if (this.closed) return;
    this.items.push(item);
    this.waiter?.();
  }
}

export class LogKv implements KvWatcher, KvReader {
  readonly log: Msg[] = [];
  nextSeq = 1n;
  firstSeq = 1n;
  readonly feeds = new Set<Feed>();
  /** Every watch() call, in order. */
  readonly calls: { scope: WatchScope; from: WatchCursor | undefined }[] = [];
  /** When set, keys() throws it. */
  keysError: unknown;
  /** Called on every watch() (e.g. to fail the first few). */
  onWatch: ((call: number) => void) | undefined;
  /** Called once a keys() listing has been read in full (e.g. to evict more of the log). */
  afterKeys: (() => void) | undefined;
  /** When false, state-syncs never call `onRelisted` (a watcher without it). */
  signalsRelisted = true;

  #append(key: string, op: Msg["op"], value: Uint8Array): bigint {
    const m: Msg = { seq: this.nextSeq++, key, op, value };
    this.log.push(m);
    for (const f of this.feeds) if (scopeContains(f.scope, key)) f.push({ update: toUpdate(m) });
    return m.seq;
  }

  put(key: string, value: string | Uint8Array): bigint {
    return this.#append(key, "put", typeof value === "string" ? new TextEncoder().encode(value) : value);
  }

  del(key: string): bigint {
    return this.#append(key, "delete", new Uint8Array(0));
  }

  /** Retention: drop every message with seq ≤ `seq` (a bounded log evicting its head). */
  evictThrough(seq: bigint): void {
    while (this.log.length > 0 && (this.log[0] as Msg).seq <= seq) this.log.shift();
    if (seq + 1n > this.firstSeq) this.firstSeq = seq + 1n;
  }

  /** Ends every open watch (like a server going away cleanly). */
  endAll(): void {
    for (const f of this.feeds) f.push({ end: true });
  }

  /** Fails every open watch with `error`. */
  failAll(error: unknown): void {
    for (const f of this.feeds) f.push({ error });
  }

  /** Total updates delivered to consumers across all watches. */
  get delivered(): number {
    let n = 0;
    for (const f of this.allFeeds) n += f.delivered;
    return n;
  }
  readonly allFeeds: Feed[] = [];

  watch(scope: WatchScope, opts: WatchOptions = {}): AsyncIterable<KvUpdate> {
    const from = opts.from;
    this.calls.push({ scope, from });
    this.onWatch?.(this.calls.length);
    const feed = new Feed(scope, from);
    this.allFeeds.push(feed);
    const rev = from && !from.isNone ? from.revision : undefined;
    if (rev !== undefined && rev > 0n) {
      if (this.firstSeq > rev + 1n) {
        feed.push({
          error: new SlipstreamError("CURSOR_EXPIRED", `cursor ${rev} is before first sequence ${this.firstSeq}`),
        });
      } else {
        for (const m of this.log) if (m.seq > rev && scopeContains(scope, m.key)) feed.push({ update: toUpdate(m) });
      }
    } else {
      const last = new Map<string, Msg>();
      for (const m of this.log) if (scopeContains(scope, m.key)) last.set(m.key, m);
      for (const m of [...last.values()].sort((a, b) => (a.seq < b.seq ? -1 : 1))) feed.push({ update: toUpdate(m) });
      if (this.signalsRelisted) feed.push({ relisted: true });
    }
    this.feeds.add(feed);
    const feeds = this.feeds;
    const signal = opts.signal;
    return {
      [Symbol.asyncIterator](): AsyncIterator<KvUpdate> {
        const finish = () => {
          feed.closed = true;
          feeds.delete(feed);
          feed.waiter?.();
        };
        signal?.addEventListener("abort", finish, { once: true });
        return {
          async next(): Promise<IteratorResult<KvUpdate>> {
            for (;;) {
              if (feed.closed) return { done: true, value: undefined };
              const item = feed.items[feed.head];
              if (item) {
                feed.head++;
                if (feed.head > 1024 && feed.head * 2 > feed.items.length) {
                  feed.items = feed.items.slice(feed.head);
                  feed.head = 0;
                }
              }
              if (item) {
                if ("update" in item) {
                  feed.delivered++;
                  return { done: false, value: item.update };
                }
                if ("relisted" in item) {
                  opts.onRelisted?.();
                  continue;
                }
                finish();
                if ("error" in item) throw item.error;
                return { done: true, value: undefined };
              }
              await new Promise<void>((resolve) => {
                feed.waiter = resolve;
              });
              feed.waiter = undefined;
            }
          },
          async return(): Promise<IteratorResult<KvUpdate>> {
            finish();
            return { done: true, value: undefined };
          },
        };
      },
    };
  }

  #latest(): Map<string, Msg> {
    const last = new Map<string, Msg>();
    for (const m of this.log) last.set(m.key, m);
    return last;
  }

  async get(key: string): Promise<KvEntry | undefined> {
    const e = await this.entry(key);
    return e && e.value.length > 0 ? e : undefined;
  }

  async entry(key: string): Promise<KvEntry | undefined> {
    const m = this.#latest().get(key);
    return m && m.op === "put" ? { key, value: m.value, version: VersionToken.fromRevision(m.seq) } : undefined;
  }

  async *keys(prefix?: string, _opts?: OpOptions): AsyncIterable<string> {
    if (this.keysError !== undefined) throw this.keysError;
    for (const [k, m] of this.#latest()) {
      if (m.op === "put" && m.value.length > 0 && k.startsWith(prefix ?? "")) yield k;
    }
    this.afterKeys?.();
  }

  async *scan(prefix?: string): AsyncIterable<KvEntry> {
    for (const [k, m] of this.#latest()) {
      if (m.op === "put" && m.value.length > 0 && k.startsWith(prefix ?? "")) {
        yield { key: k, value: m.value, version: VersionToken.fromRevision(m.seq) };
      }
    }
  }
}

/** A parse that keeps everything as a compact string: "put key=value@rev" / "delete key@rev". */
export function describeUpdate(u: KvUpdate): string {
  const rev = u.type === "put" ? u.entry.version.revision : u.version.revision;
  const at = rev === undefined ? "@?" : `@${rev}`;
  return u.type === "put"
    ? `put ${u.entry.key}=${new TextDecoder().decode(u.entry.value)}${at}`
    : `${u.type} ${u.key}${at}`;
}

/** Collects log calls for assertions. */
export function recordingLogger() {
  const lines: { level: string; msg: string; attrs?: Record<string, unknown> }[] = [];
  const at = (level: string) => (msg: string, attrs?: Record<string, unknown>) => {
    lines.push({ level, msg, attrs });
  };
  return { lines, logger: { debug: at("debug"), info: at("info"), warn: at("warn"), error: at("error") } };
}
