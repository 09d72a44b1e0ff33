/**
 * BlobStore wrappers for tests and careful operators: one that hides conditional writes
 * (to exercise the non-atomic path) and one that injects faults before chosen operations.
 */
import { SlipstreamError } from "@slipstream/core";
import {
  type BlobBody,
  type BlobInfo,
  type BlobOpOptions,
  type BlobPutOptions,
  type BlobReadSmallOptions,
  type BlobStore,
  type ConditionalPutResult,
  conditionalWritesUnsupported,
  type PutCondition,
  type SmallBlob,
} from "./blob-store.js";

/** `store` as a store without conditional writes (`conditionalPut` throws `BACKEND`). */
export function withoutConditionalWrites(store: BlobStore): BlobStore {
  return {
    capabilities: { conditionalWrites: false },
    put: (key, body, opts) => store.put(key, body, opts),
    get: (key, opts) => store.get(key, opts),
    ...(store.readRange ? { readRange: store.readRange.bind(store) } : {}),
    readSmall: (key, opts) => store.readSmall(key, opts),
    conditionalPut: async () => {
      throw conditionalWritesUnsupported("this store");
    },
    list: (prefix, opts) => store.list(prefix, opts),
    delete: (key, opts) => store.delete(key, opts),
  };
}

/** The operations {@link FaultInjectingBlobStore} can intercept. */
export type BlobOperation = "put" | "get" | "readRange" | "readSmall" | "conditionalPut" | "list" | "delete";

/**
 * Decides the fate of one call: return normally to let it through, throw to fail it, or
 * return a promise that never settles (or settles late) to stall it. It receives the
 * call's signal so a stall can end when the caller gives up.
 */
export type FaultHook = (op: BlobOperation, key: string, signal: AbortSignal | undefined) => void | Promise<void>;

/** A BlobStore that runs a {@link FaultHook} before every operation of an inner store. */
export class FaultInjectingBlobStore implements BlobStore {
  readonly #inner: BlobStore;
  /** Replace at any time; the default lets everything through. */
  hook: FaultHook;
  /** Every call seen, in order (`op key`; `readRange key start-end`). */
  readonly calls: string[] = [];

  constructor(inner: BlobStore, hook: FaultHook = () => {}) {
    this.#inner = inner;
    this.hook = hook;
  }

  get capabilities() {
    return this.#inner.capabilities;
  }

  async #before(op: BlobOperation, key: string, signal: AbortSignal | undefined): Promise<void> {
    this.calls.push(`${op} ${key}`);
    await this.hook(op, key, signal);
  }

  async put(key: string, body: AsyncIterable<Uint8Array>, opts?: BlobPutOptions): Promise<void> {
    await this.#before("put", key, opts?.signal);
    return this.#inner.put(key, body, opts);
  }

  async get(key: string, opts?: BlobOpOptions): Promise<BlobBody | undefined> {
    await this.#before("get", key, opts?.signal);
    return this.#inner.get(key, opts);
  }

  /** Passes ranged reads through (or reads the range through `get` when the inner store has none); the hook sees `key` and the log `key start-end`. */
  async readRange(key: string, start: number, end: number, opts?: BlobOpOptions): Promise<Uint8Array | undefined> {
    this.calls.push(`readRange ${key} ${start}-${end}`);
    await this.hook("readRange", key, opts?.signal);
    if (this.#inner.readRange) return this.#inner.readRange(key, start, end, opts);
    const got = await this.#inner.get(key, opts);
    if (!got) return undefined;
    const chunks: Buffer[] = [];
    let pos = 0;
    for await (const c of got.body) {
      const b = Buffer.from(c.buffer, c.byteOffset, c.byteLength);
      const from = Math.max(start, pos) - pos;
      const to = Math.min(end, pos + b.byteLength) - pos;
      if (to > from) chunks.push(b.subarray(from, to));
      pos += b.byteLength;
      if (pos >= end) break;
    }
    return Buffer.concat(chunks);
  }

  async readSmall(key: string, opts: BlobReadSmallOptions): Promise<SmallBlob | undefined> {
    await this.#before("readSmall", key, opts.signal);
    return this.#inner.readSmall(key, opts);
  }

  async conditionalPut(
    key: string,
    bytes: Uint8Array,
    condition: PutCondition,
    opts?: BlobOpOptions,
  ): Promise<ConditionalPutResult> {
    await this.#before("conditionalPut", key, opts?.signal);
    return this.#inner.conditionalPut(key, bytes, condition, opts);
  }

  async *list(prefix: string, opts?: BlobOpOptions): AsyncGenerator<BlobInfo> {
    await this.#before("list", prefix, opts?.signal);
    yield* this.#inner.list(prefix, opts);
  }

  async delete(key: string, opts?: BlobOpOptions): Promise<void> {
    await this.#before("delete", key, opts?.signal);
    return this.#inner.delete(key, opts);
  }
}

/** A hook helper: a promise that settles only when `signal` fires (rejecting with its reason). */
export function stallUntilAborted(signal: AbortSignal | undefined): Promise<never> {
  return new Promise<never>((_, reject) => {
    if (!signal) return;
    if (signal.aborted) reject(signal.reason);
    signal.addEventListener("abort", () => reject(signal.reason ?? new SlipstreamError("ABORTED", "aborted")), {
      once: true,
    });
  });
}
