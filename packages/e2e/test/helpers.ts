import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import {
  type KvUpdate,
  type SnapshotStore,
  updateKey,
  updateVersion,
  type WatchCursor,
  type WatchScope,
} from "@slipstream/core";
import { type AppliedWatch, watchApplied } from "@slipstream/fold";
import { ExportLease } from "@slipstream/lease";
import { connect, type NatsConnection, type NatsKvStore } from "@slipstream/nats";
import { type NatsServerHandle, startNats, type TempDir, tempDir, waitFor } from "@slipstream/testkit";
import { afterAll, beforeAll } from "vitest";

/** A nats-server, a connection to it and a temp directory, for the tests of one file. */
export interface LiveNats {
  readonly server: NatsServerHandle;
  readonly conn: NatsConnection;
  readonly tmp: TempDir;
}

/**
 * Starts a nats-server (with JetStream, on a free port), connects, and makes a temp directory
 * named `tempPrefix…` before the file's tests; closes and removes all three after them. The
 * fields are read inside tests (they exist once `beforeAll` ran).
 */
export function useLiveNats(tempPrefix: string): LiveNats {
  let server: NatsServerHandle | undefined;
  let conn: NatsConnection | undefined;
  let tmp: TempDir | undefined;
  beforeAll(async () => {
    server = await startNats();
    conn = await connect({ servers: server.url });
    tmp = await tempDir(tempPrefix);
  });
  afterAll(async () => {
    await conn?.close();
    await server?.close();
    await tmp?.[Symbol.asyncDispose]();
  });
  const ready = <T>(v: T | undefined, what: string): T => {
    if (v === undefined) throw new Error(`useLiveNats: ${what} is not ready (read it inside a test)`);
    return v;
  };
  return {
    get server() {
      return ready(server, "server");
    },
    get conn() {
      return ready(conn, "conn");
    },
    get tmp() {
      return ready(tmp, "tmp");
    },
  };
}

/** One node of a fleet: a fold of the bucket into `store`, recording every delivered update. */
export interface FleetNode {
  readonly id: string;
  readonly store: SnapshotStore;
  readonly watch: AppliedWatch;
  /** Every update `apply` received, in order. */
  readonly delivered: KvUpdate[];
  /** The domain state the node's `apply` maintains. */
  readonly state: Map<string, string>;
  lease(leaseKv: NatsKvStore, key?: string): ExportLease;
  caughtUpTo(revision: bigint): Promise<void>;
  stop(): Promise<WatchCursor>;
}

const text = new TextDecoder();

/** Starts folding `kv` into `store` (watching `scope`, all by default), resuming from the store's cursor. */
export function startNode(
  id: string,
  kv: NatsKvStore,
  store: SnapshotStore,
  scope: WatchScope = { kind: "all" },
): FleetNode {
  const delivered: KvUpdate[] = [];
  const state = new Map<string, string>();
  const watch = watchApplied<KvUpdate>({
    watcher: kv.watcher,
    reader: kv.reader,
    store,
    scope,
    parse: (u) => u,
    apply: (batch) => {
      for (const u of batch) {
        delivered.push(u);
        if (u.type === "put") state.set(u.entry.key, text.decode(u.entry.value));
        else state.delete(u.key);
      }
    },
  });
  return {
    id,
    store,
    watch,
    delivered,
    state,
    lease: (leaseKv, key = "export.routes") =>
      new ExportLease({ reader: leaseKv.reader, writer: leaseKv.writer, key, holderId: id }),
    caughtUpTo: (revision) =>
      waitFor(() => (watch.cursor.revision ?? 0n) >= revision, {
        timeoutMs: 15_000,
        message: `${id} did not apply up to revision ${revision} (at ${watch.cursor})`,
      }),
    stop: async () => {
      const c = await watch.stop();
      await store.close();
      return c;
    },
  };
}

/** The live contents of the bucket as key → value text. */
export async function bucketState(kv: NatsKvStore): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for await (const e of kv.reader.scan()) out.set(e.key, text.decode(e.value));
  return out;
}

/** The contents of a fold as key → value text. */
export async function foldState(store: SnapshotStore): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for await (const e of store.range("")) out.set(e.key, text.decode(e.value));
  return out;
}

/** Puts `count` routes `route.<i>` = `<tag>-<i>`; returns the last revision. */
export async function putRoutes(kv: NatsKvStore, from: number, count: number, tag: string): Promise<bigint> {
  let last = 0n;
  for (let i = from; i < from + count; i++) {
    const v = await kv.writer.put(`route.${i}`, new TextEncoder().encode(`${tag}-${i}`));
    last = v.revision ?? last;
  }
  return last;
}

/** Revisions of delivered updates. */
export function revisions(updates: readonly KvUpdate[]): bigint[] {
  return updates.map((u) => updateVersion(u).revision ?? -1n);
}

export function keys(updates: readonly KvUpdate[]): string[] {
  return updates.map(updateKey);
}

export async function dirs(root: string, ...names: string[]): Promise<string[]> {
  const out = names.map((n) => join(root, n));
  for (const d of out) await mkdir(d, { recursive: true });
  return out;
}
