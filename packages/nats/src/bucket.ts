/**
 * Buckets: get-or-create of the KV stream `KV_<name>` and the store that vends the bucket's
 * reader, writer and watcher. An existing bucket is returned unchanged — the config only
 * applies at creation.
 */

import type { StreamConfig, StreamInfo } from "@nats-io/jetstream";
import { DiscardPolicy, RetentionPolicy, StorageType } from "@nats-io/jetstream";
import { nanos } from "@nats-io/nats-core";
import {
  cursorRank,
  invalidArgument,
  type KvStore,
  type OpOptions,
  type RetentionHorizon,
  retentionHorizon,
  SlipstreamError,
  type WatchCursor,
} from "@slipstream/core";
import { type BucketContext, streamInfo, timed } from "./context.js";
import { JS_CODES, jsApiCode } from "./errors.js";
import { validateBucketName } from "./keys.js";
import { NatsKvReader } from "./reader.js";
import { NatsKvWatcher } from "./watcher.js";
import { NatsKvWriter } from "./writer.js";

/** Bucket size bound when none is given: 10 MiB. */
export const DEFAULT_MAX_BYTES = 10 * 1024 * 1024;
/** The most history per key NATS KV keeps. */
export const MAX_HISTORY = 64;

/** How to create a bucket (ignored when the bucket already exists). */
export interface StoreConfig {
  /** Bucket name: letters, digits, `-` and `_`. */
  name: string;
  /** Values kept per key, 1..64. @defaultValue 1 */
  history?: number;
  /** Bound of the whole bucket in bytes. @defaultValue 10 MiB (10485760) */
  maxBytes?: number;
  /** Age after which messages expire, in ms; 0 = never. @defaultValue 0 */
  maxAgeMs?: number;
  /** Replicas in a cluster, 1..5. @defaultValue 1 */
  replicas?: number;
  /** @defaultValue "file" */
  storage?: "file" | "memory";
  /**
   * What happens at `maxBytes`: "new" refuses further writes; "old" evicts the oldest
   * messages (a bounded log — watches resuming from evicted revisions get CURSOR_EXPIRED).
   * @defaultValue "new"
   */
  discard?: "new" | "old";
}

/** The state of a bucket's stream. Sequences are bigints (they may exceed 2^53). */
export interface BucketStatus {
  name: string;
  /** The backing stream, `KV_<name>`. */
  stream: string;
  /** First retained sequence (lastSeq + 1 when empty): resuming below it is impossible. */
  firstSeq: bigint;
  lastSeq: bigint;
  messages: number;
  bytes: number;
  /** When the first retained message was published; undefined when the stream is empty. */
  firstTime: Date | undefined;
  /** When the last message was published; undefined when the stream is empty. */
  lastTime: Date | undefined;
  /** Consumers currently on the stream (watches and listings). */
  consumers: number;
  history: number;
  maxBytes: number;
  /** Message-count limit of the stream; -1 = none (the KV default). */
  maxMsgs: number;
  maxAgeMs: number;
  replicas: number;
  storage: "file" | "memory";
  discard: "new" | "old";
}

function intIn(v: unknown, name: string, min: number, max: number): number {
  if (typeof v !== "number" || !Number.isSafeInteger(v) || v < min || v > max) {
    throw invalidArgument(`${name} must be an integer in ${min}..${max}, got ${String(v)}`);
  }
  return v;
}

/** Validated config with defaults applied. */
export function normalizeConfig(config: StoreConfig): Required<StoreConfig> {
  if (typeof config !== "object" || config === null) throw new TypeError("store config must be an object");
  validateBucketName(config.name);
  const storage = config.storage ?? "file";
  if (storage !== "file" && storage !== "memory")
    throw invalidArgument(`storage must be "file" or "memory", got ${String(storage)}`);
  const discard = config.discard ?? "new";
  if (discard !== "new" && discard !== "old")
    throw invalidArgument(`discard must be "new" or "old", got ${String(discard)}`);
  return {
    name: config.name,
    history: intIn(config.history ?? 1, "history", 1, MAX_HISTORY),
    maxBytes: intIn(config.maxBytes ?? DEFAULT_MAX_BYTES, "maxBytes", 1, Number.MAX_SAFE_INTEGER),
    maxAgeMs: intIn(config.maxAgeMs ?? 0, "maxAgeMs", 0, Number.MAX_SAFE_INTEGER / 1e6),
    replicas: intIn(config.replicas ?? 1, "replicas", 1, 5),
    storage,
    discard,
  };
}

/** The stream config of a KV bucket (what the NATS KV clients create, plus our discard). */
export function kvStreamConfig(c: Required<StoreConfig>): Partial<StreamConfig> & { name: string } {
  return {
    name: `KV_${c.name}`,
    subjects: [`$KV.${c.name}.>`],
    retention: RetentionPolicy.Limits,
    max_msgs_per_subject: c.history,
    max_bytes: c.maxBytes,
    max_age: nanos(c.maxAgeMs),
    max_msg_size: -1,
    storage: c.storage === "memory" ? StorageType.Memory : StorageType.File,
    discard: c.discard === "old" ? DiscardPolicy.Old : DiscardPolicy.New,
    num_replicas: c.replicas,
    allow_rollup_hdrs: true,
    allow_direct: true,
    deny_delete: false,
    deny_purge: false,
    // The server refuses a duplicate window longer than max_age.
    duplicate_window: nanos(c.maxAgeMs > 0 ? Math.min(2 * 60 * 1000, c.maxAgeMs) : 2 * 60 * 1000),
  };
}

function timeOf(ts: string | undefined): Date | undefined {
  if (!ts) return undefined;
  const d = new Date(ts);
  // The server reports the zero time ("0001-01-01T00:00:00Z") for an empty stream.
  return Number.isNaN(d.getTime()) || d.getUTCFullYear() < 1970 ? undefined : d;
}

/** Converts stream info into a {@link BucketStatus}. */
export function toStatus(name: string, info: StreamInfo): BucketStatus {
  const { state, config } = info;
  return {
    name,
    stream: config.name,
    firstSeq: BigInt(state.first_seq),
    lastSeq: BigInt(state.last_seq),
    messages: state.messages,
    bytes: state.bytes,
    firstTime: state.messages > 0 ? timeOf(state.first_ts) : undefined,
    lastTime: state.messages > 0 ? timeOf(state.last_ts) : undefined,
    consumers: state.consumer_count,
    history: config.max_msgs_per_subject,
    maxBytes: config.max_bytes,
    maxMsgs: config.max_msgs ?? -1,
    maxAgeMs: Math.round((config.max_age ?? 0) / 1e6),
    replicas: config.num_replicas,
    storage: config.storage === StorageType.Memory ? "memory" : "file",
    discard: config.discard === DiscardPolicy.Old ? "old" : "new",
  };
}

/**
 * Looks the bucket's stream up, creating it when absent (unless `create` is false: then an
 * absent bucket is `INVALID_ARGUMENT`). Returns its info.
 */
export async function getOrCreateStream(
  ctx: Pick<BucketContext, "jsm" | "timeoutMs" | "bucket" | "stream" | "logger">,
  config: Required<StoreConfig>,
  signal?: AbortSignal,
  create = true,
): Promise<StreamInfo> {
  const info = () => streamInfo(ctx as BucketContext, signal);
  try {
    return await info();
  } catch (err) {
    if (jsApiCode(SlipstreamError.is(err) ? err.cause : err) !== JS_CODES.streamNotFound) throw err;
    if (!create) throw invalidArgument(`bucket ${config.name} does not exist (no stream ${ctx.stream})`, err);
  }
  try {
    const created = await timed(ctx, `creating bucket ${config.name}`, signal, () =>
      ctx.jsm.streams.add(kvStreamConfig(config)),
    );
    ctx.logger.info("created bucket", { bucket: config.name });
    return created;
  } catch (err) {
    // Lost a creation race: somebody else made it first; use theirs unchanged.
    if (jsApiCode(SlipstreamError.is(err) ? err.cause : err) === JS_CODES.streamNameInUse) return await info();
    throw err;
  }
}

/** A NATS KV bucket vending its reader, writer and watcher. */
export class NatsKvStore implements KvStore {
  readonly name: string;
  readonly reader: NatsKvReader;
  readonly writer: NatsKvWriter;
  readonly watcher: NatsKvWatcher;
  readonly #ctx: BucketContext;

  /** @internal built by `NatsConnection.store`. */
  constructor(ctx: BucketContext) {
    this.#ctx = ctx;
    this.name = ctx.bucket;
    this.reader = new NatsKvReader(ctx);
    this.writer = new NatsKvWriter(ctx);
    this.watcher = new NatsKvWatcher(ctx);
  }

  /** The backing stream's state (first/last sequence, counts, limits). */
  async status(opts?: OpOptions): Promise<BucketStatus> {
    return toStatus(this.name, await streamInfo(this.#ctx, opts?.signal));
  }

  /**
   * The retention horizon of `cursor` on this bucket (see `retentionHorizon` in
   * `@slipstream/core`): whether it can still resume, how many revisions it is behind, and
   * how many messages (and, with an age limit, how much time) remain before the bucket
   * evicts what it needs. With an age limit it reads the publish time of revision + 1 (one
   * direct get); when that message is gone it dates the horizon from the first retained
   * message instead (a lower bound). Pass `status` to reuse a status you already have.
   */
  async horizon(
    cursor: WatchCursor,
    opts: OpOptions & { status?: BucketStatus; now?: Date } = {},
  ): Promise<RetentionHorizon> {
    const status = opts.status ?? (await this.status(opts));
    const rev = cursor.isNone ? undefined : cursorRank(cursor);
    let neededPublishedAt: Date | undefined;
    let lowerBound = false;
    if (status.maxAgeMs > 0 && rev !== undefined && rev < status.lastSeq && rev + 1n >= status.firstSeq) {
      neededPublishedAt = await this.#publishedAt(rev + 1n, opts.signal);
      if (neededPublishedAt === undefined) {
        neededPublishedAt = status.firstTime;
        lowerBound = true;
      }
    }
    return retentionHorizon(status, cursor, {
      ...(neededPublishedAt !== undefined ? { neededPublishedAt } : {}),
      neededTimeIsLowerBound: lowerBound,
      ...(opts.now !== undefined ? { now: opts.now } : {}),
    });
  }

  /** The publish time of stream sequence `seq`, or undefined when it is no longer retained. */
  async #publishedAt(seq: bigint, signal: AbortSignal | undefined): Promise<Date | undefined> {
    const ctx = this.#ctx;
    const msg = await timed(ctx, `reading sequence ${seq} of bucket ${this.name}`, signal, async () => {
      try {
        return ctx.direct
          ? await ctx.jsm.direct.getMessage(ctx.stream, { seq: Number(seq) })
          : await ctx.jsm.streams.getMessage(ctx.stream, { seq: Number(seq) });
      } catch (err) {
        if (jsApiCode(err) === JS_CODES.noMessageFound) return null;
        if (/no message found|message not found/i.test(String((err as Error)?.message))) return null;
        throw err;
      }
    });
    return msg ? msg.time : undefined;
  }

  toString(): string {
    return `NatsKvStore(${this.name})`;
  }
}
