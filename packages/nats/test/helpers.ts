import { randomBytes } from "node:crypto";
import { type ConsumerInfo, jetstreamManager } from "@nats-io/jetstream";
import type { KvUpdate } from "@slipstream/core";
import { type NatsServerHandle, startNats } from "@slipstream/testkit";
import { afterEach } from "vitest";
import { type ConnectOptions, connect, type NatsConnection, type StoreConfig } from "../src/index.js";

export const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
export const dec = (b: Uint8Array): string => new TextDecoder().decode(b);

let counter = 0;
/** A bucket name unique within the run. */
export function bucketName(tag = "b"): string {
  counter++;
  return `${tag}_${counter}_${randomBytes(3).toString("hex")}`;
}

/** Connects to `server` with short timeouts suited to tests. */
export function connectTo(server: NatsServerHandle, extra: Partial<ConnectOptions> = {}): Promise<NatsConnection> {
  return connect({ servers: server.url, timeoutMs: 5_000, reconnectTimeWaitMs: 250, ...extra });
}

/** Consumers currently on a bucket's stream, counted through the JetStream manager. */
export async function consumerCount(conn: NatsConnection, bucket: string): Promise<number> {
  const jsm = await jetstreamManager(conn.client);
  const info = await jsm.streams.info(`KV_${bucket}`);
  return info.state.consumer_count;
}

/** Describes an update compactly for assertions: "put k=v@3", "delete k@4", "purge k@5". */
export function show(u: KvUpdate): string {
  if (u.type === "put") return `put ${u.entry.key}=${dec(u.entry.value)}@${u.entry.version.revision}`;
  return `${u.type} ${u.key}@${u.version.revision}`;
}

/** Pulls `n` updates from a watch iterator (each within `ms`), keeping the iterator open. */
export async function take(it: AsyncIterator<KvUpdate>, n: number, ms = 10_000): Promise<KvUpdate[]> {
  const out: KvUpdate[] = [];
  for (let i = 0; i < n; i++) {
    const r = await nextWithin(it, ms);
    if (r.done) throw new Error(`watch ended after ${out.length} of ${n} updates: ${out.map(show).join(", ")}`);
    out.push(r.value);
  }
  return out;
}

/** it.next() bounded by `ms`; rejects with a plain Error on timeout. */
export function nextWithin<T>(it: AsyncIterator<T>, ms: number): Promise<IteratorResult<T>> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no update within ${ms} ms`)), ms);
  });
  return Promise.race([it.next(), t]).finally(() => clearTimeout(timer));
}

/** Resolves to "quiet" if nothing arrives within `ms`, else to the update that did. */
export async function quietFor<T>(
  pending: Promise<IteratorResult<T>>,
  ms: number,
): Promise<"quiet" | IteratorResult<T>> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<"quiet">((resolve) => {
    timer = setTimeout(() => resolve("quiet"), ms);
  });
  return Promise.race([pending, t]).finally(() => clearTimeout(timer));
}

export type { NatsServerHandle, StoreConfig };
export { startNats };

/** The consumers on a bucket's stream. */
export async function consumerInfos(conn: NatsConnection, bucket: string): Promise<ConsumerInfo[]> {
  const jsm = await jetstreamManager(conn.client);
  return await jsm.consumers.list(`KV_${bucket}`).next();
}

/** Names of the consumers on a bucket's stream. */
export async function consumerNames(conn: NatsConnection, bucket: string): Promise<string[]> {
  return (await consumerInfos(conn, bucket)).map((c) => c.name);
}

/**
 * Teardown steps run after each test, last registered first, failures ignored. Call at the
 * top of a file or `describe`; push closers onto the returned list.
 */
export function useCleanups(): (() => Promise<unknown>)[] {
  const cleanups: (() => Promise<unknown>)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
  });
  return cleanups;
}
