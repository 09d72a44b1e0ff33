/**
 * The publisher: writes a realistic route table (keys under several region prefixes, JSON
 * values), then keeps changing it at a steady rate (updates, new routes, deletes), and can
 * roll out a new version of the oldest routes until retention has evicted the head of the
 * log. It remembers the latest revision of every key, so the conductor knows exactly what
 * the bucket holds.
 */
import type { NatsKvStore } from "@slipstream/nats";
import { sleep } from "./term.js";

const REGIONS = ["us-east", "us-west", "eu-central", "ap-south", "sa-east"];
const SERVICES = [
  "api",
  "auth",
  "billing",
  "cart",
  "catalog",
  "checkout",
  "search",
  "media",
  "profile",
  "feed",
  "notify",
  "orders",
  "pricing",
  "reviews",
  "ship",
  "stock",
  "tax",
  "web",
  "ws",
  "admin",
];
/** The churn's repeating pattern: mostly updates, some new routes, some deletes. Starts with an update. */
const PATTERN = ["update", "update", "update", "update", "add", "update", "update", "delete", "update", "update"];
const CHUNK = 256;
const enc = new TextEncoder();

/** The key of route `i`: `route.<region>.<service>.r<i>`. */
export function routeKey(i: number): string {
  return `route.${REGIONS[i % REGIONS.length]}.${SERVICES[Math.floor(i / REGIONS.length) % SERVICES.length]}.r${i}`;
}

function routeValue(i: number, generation: number): Uint8Array {
  return enc.encode(
    JSON.stringify({
      upstream: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}:${8000 + (i % 1000)}`,
      weight: 1 + ((i * 7 + generation) % 100),
      timeoutMs: 500 + ((i + generation) % 20) * 100,
      retries: generation % 4,
      tls: i % 3 !== 0,
      generation,
    }),
  );
}

/** Counts of what the publisher wrote. */
export interface ChurnCounts {
  updates: number;
  adds: number;
  deletes: number;
}

/** Writes into one bucket and remembers the latest revision of every live key. */
export class Publisher {
  readonly kv: NatsKvStore;
  /** Live keys → the revision of their latest value. */
  readonly live = new Map<string, bigint>();
  readonly counts: ChurnCounts = { updates: 0, adds: 0, deletes: 0 };
  #routes = 0;
  #generation = 0;
  #step = 0;
  #stride = 1;
  #op = 0;
  #churn: Promise<void> | undefined;
  #stopChurn = false;

  constructor(kv: NatsKvStore) {
    this.kv = kv;
  }

  /** Every route key ever written (live or deleted), in creation order. */
  get routes(): number {
    return this.#routes;
  }

  async #put(i: number): Promise<void> {
    const key = routeKey(i);
    const version = await this.kv.writer.put(key, routeValue(i, this.#generation));
    this.live.set(key, version.revision ?? 0n);
  }

  async #delete(i: number): Promise<void> {
    const key = routeKey(i);
    this.live.delete(key);
    await this.kv.writer.delete(key);
  }

  /** Writes routes 0..count-1 (`onProgress` after every chunk). */
  async seed(count: number, onProgress?: (done: number) => void): Promise<void> {
    this.#routes = count;
    // Round-robin over the seed in a scattered order (a stride coprime with the count), so a
    // key is touched again only after every other one was: within a window shorter than
    // the table, no change supersedes another and every delta is exactly countable.
    this.#stride = pickStride(count);
    for (let i = 0; i < count; i += CHUNK) {
      const jobs: Promise<void>[] = [];
      for (let j = i; j < Math.min(count, i + CHUNK); j++) jobs.push(this.#put(j));
      await Promise.all(jobs);
      onProgress?.(Math.min(count, i + CHUNK));
    }
  }

  /** One change of the steady churn. */
  #change(seedCount: number): Promise<void> {
    const kind = PATTERN[this.#op % PATTERN.length];
    this.#op += 1;
    this.#generation += 1;
    if (kind === "add") {
      this.counts.adds += 1;
      return this.#put(this.#routes++);
    }
    const i = (this.#step * this.#stride) % seedCount;
    this.#step += 1;
    if (kind === "delete" && this.live.has(routeKey(i))) {
      this.counts.deletes += 1;
      return this.#delete(i);
    }
    this.counts.updates += 1;
    return this.#put(i); // an update, or the re-creation of a deleted route
  }

  /** Starts changing the table at `perSecond` changes per second (until {@link pause}). */
  startChurn(perSecond: number, seedCount: number): void {
    if (this.#churn) return;
    this.#stopChurn = false;
    const tickMs = 50;
    const perTick = Math.max(1, Math.round((perSecond * tickMs) / 1000));
    this.#churn = (async () => {
      while (!this.#stopChurn) {
        const t = performance.now();
        const jobs: Promise<void>[] = [];
        for (let k = 0; k < perTick; k++) jobs.push(this.#change(seedCount));
        await Promise.all(jobs);
        await sleep(Math.max(0, tickMs - (performance.now() - t)));
      }
    })();
  }

  /** Stops the churn after its in-flight changes are acknowledged. */
  async pause(): Promise<void> {
    this.#stopChurn = true;
    await this.#churn;
    this.#churn = undefined;
  }

  /**
   * Rolls out a new version of the routes whose latest value is oldest, oldest first, until
   * the bucket's first retained revision is above `beyond` (history 1: a rewritten key's
   * old revision leaves the log). Returns how many routes it rewrote.
   */
  async rolloutUntilEvicted(
    beyond: bigint,
    onProgress?: (rewritten: number, firstSeq: bigint) => void,
  ): Promise<number> {
    this.#generation += 1;
    const oldest = [...this.live.entries()].filter(([, r]) => r <= beyond).sort((a, b) => (a[1] < b[1] ? -1 : 1));
    let rewritten = 0;
    for (let i = 0; i < oldest.length; i += CHUNK) {
      const jobs = oldest.slice(i, i + CHUNK).map(([key]) => this.#put(indexOf(key)));
      await Promise.all(jobs);
      rewritten += jobs.length;
      const first = (await this.kv.status()).firstSeq;
      onProgress?.(rewritten, first);
      if (first > beyond) break;
    }
    return rewritten;
  }
}

function indexOf(key: string): number {
  return Number(key.slice(key.lastIndexOf(".r") + 2));
}

function gcd(a: number, b: number): number {
  return b === 0 ? a : gcd(b, a % b);
}

function pickStride(count: number): number {
  let stride = Math.max(1, Math.floor(count * 0.618));
  while (gcd(stride, count) !== 1) stride += 1;
  return stride;
}
