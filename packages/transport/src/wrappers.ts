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
    readSmall: (key, opts) => store.readSmall(key, opts),
    conditionalPut: async () => {
      throw conditionalWritesUnsupported("this store");
    },
    list: (prefix, opts) => store.list(prefix, opts),
    delete: (key, opts) => store.delete(key, opts),
  };
}

/** The operations {@link FaultInjectingBlobStore} can intercept. */
export type BlobOperation = "put" | "get" | "readSmall" | "conditionalPut" | "list" | "delete";

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
  /** Every call seen, in order (`op key`). */
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
