/** What a bucket's reader, writer and watcher share. */
import type {
  Consumer,
  ConsumerConfig,
  JetStreamClient,
  JetStreamManager,
  OrderedConsumerOptions,
  StreamInfo,
} from "@nats-io/jetstream";
import { AckPolicy } from "@nats-io/jetstream";
import { type NatsConnection as NatsClient, nanos, nuid } from "@nats-io/nats-core";
import { type Logger, withTimeout } from "@slipstream/core";
import { mapNatsError } from "./errors.js";

/** A server-side resource (a watch or listing consumer) that must be released on close. */
export interface Releasable {
  /** Stops the work and deletes its consumer; never throws. */
  release(): Promise<void>;
  /** The client closed by itself (not through our `close()`): fail instead of ending cleanly. */
  clientClosed?(): void;
  /** The client lost its server (it reconnects by itself). */
  disconnected?(): void;
}

/** Tracks live consumers of one connection so `close()` can release them all. */
export class ResourceRegistry {
  readonly #items = new Set<Releasable>();
  #closing = false;

  /** True once the owning connection started closing. */
  get closing(): boolean {
    return this.#closing;
  }

  /** Registers `r`; returns the function that unregisters it. */
  add(r: Releasable): () => void {
    this.#items.add(r);
    return () => {
      this.#items.delete(r);
    };
  }

  /** Number of live resources (for tests and diagnostics). */
  get size(): number {
    return this.#items.size;
  }

  /** Tells every resource that the client lost its server. */
  disconnected(): void {
    for (const r of this.#items) r.disconnected?.();
  }

  /** Tells every resource that the client closed underneath it. */
  clientClosed(): void {
    for (const r of this.#items) r.clientClosed?.();
  }

  /** Marks the registry closing and releases everything registered. */
  async releaseAll(): Promise<void> {
    this.#closing = true;
    const items = [...this.#items];
    this.#items.clear();
    await Promise.all(items.map((r) => r.release()));
  }
}

/** One bucket's view of the connection. */
export interface BucketContext {
  readonly bucket: string;
  /** The backing stream, `KV_<bucket>`. */
  readonly stream: string;
  /** Subject space of the bucket's keys, `$KV.<bucket>.`. */
  readonly subjectPrefix: string;
  readonly nc: NatsClient;
  readonly js: JetStreamClient;
  readonly jsm: JetStreamManager;
  /** Whether the stream allows direct gets. */
  readonly direct: boolean;
  /** Bound of every network await. */
  readonly timeoutMs: number;
  /** How long a watch may wait with neither messages nor heartbeats before it fails. */
  readonly watchStallMs: number;
  /** A watch re-creating its consumer after a lost connection first waits a random 0..this ms. */
  readonly watchRecreateSpreadMs: number;
  readonly logger: Logger;
  readonly resources: ResourceRegistry;
  /** Whether the client is connected right now (a disconnected client cannot delete consumers). */
  connected(): boolean;
  /** Whether the connected server takes several filter subjects on one consumer (≥ 2.10). */
  multiFilter(): boolean;
}

/** Stream info of the bucket, bounded by the context's timeout. */
export function streamInfo(ctx: BucketContext, signal?: AbortSignal): Promise<StreamInfo> {
  return withTimeout(`stream info of bucket ${ctx.bucket}`, ctx.timeoutMs, signal, async () => {
    try {
      return await ctx.jsm.streams.info(ctx.stream);
    } catch (err) {
      throw mapNatsError(err, `stream info of bucket ${ctx.bucket}`);
    }
  });
}

/** Runs a nats.js call bounded by the timeout, mapping its failure. */
export function timed<T>(
  ctx: { timeoutMs: number },
  what: string,
  signal: AbortSignal | undefined,
  fn: () => Promise<T>,
): Promise<T> {
  return withTimeout(what, ctx.timeoutMs, signal, async () => {
    try {
      return await fn();
    } catch (err) {
      throw mapNatsError(err, what);
    }
  });
}

/**
 * Creates an ordered consumer on the bucket's stream, bounded by the timeout and `signal`.
 * Giving up does not cancel the server-side creation, so whatever it still creates is
 * deleted when it arrives: an abort during setup never leaves a consumer behind.
 */
export async function createOrderedConsumer(
  ctx: BucketContext,
  what: string,
  signal: AbortSignal | undefined,
  opts: Partial<OrderedConsumerOptions>,
): Promise<Consumer> {
  const creating = ctx.js.consumers.get(ctx.stream, opts);
  try {
    return await timed(ctx, what, signal, () => creating);
  } catch (err) {
    creating.then(
      (late) =>
        withTimeout(`deleting an abandoned consumer of bucket ${ctx.bucket}`, ctx.timeoutMs, undefined, () =>
          late.delete(),
        ).catch(() => {}),
      () => {},
    );
    throw err;
  }
}

/**
 * The server-side settings of a watch consumer: what an ordered consumer is (no acks, one
 * delivery, one replica, in memory), under a fresh name, removed by the server after
 * `inactive_threshold` nobody pulls. Unlike nats.js's ordered consumer it takes several pull
 * requests at once; the watch checks the delivery order itself.
 */
export type WatchConsumerConfig = Partial<
  Pick<ConsumerConfig, "deliver_policy" | "opt_start_seq" | "filter_subject" | "filter_subjects">
> & {
  /** Milliseconds nobody pulls before the server removes the consumer. */
  inactiveMs: number;
};

/**
 * Creates a plain ephemeral pull consumer (no acks) on the bucket's stream, bounded by the
 * timeout and `signal`. Giving up does not cancel the server-side creation, so whatever it
 * still creates is deleted when it arrives: an abort during setup never leaves a consumer.
 */
export async function createWatchConsumer(
  ctx: BucketContext,
  what: string,
  signal: AbortSignal | undefined,
  config: WatchConsumerConfig,
): Promise<Consumer> {
  const { inactiveMs, ...rest } = config;
  const full: Partial<ConsumerConfig> = {
    ...rest,
    name: `slw_${nuid.next()}`,
    inactive_threshold: nanos(inactiveMs),
    ack_policy: AckPolicy.None,
    max_deliver: 1,
    num_replicas: 1,
    mem_storage: true,
  };
  const creating = ctx.jsm.consumers.add(ctx.stream, full);
  try {
    const info = await timed(ctx, what, signal, () => creating);
    return ctx.js.consumers.getConsumerFromInfo(info);
  } catch (err) {
    creating.then(
      (late) =>
        withTimeout(`deleting an abandoned consumer of bucket ${ctx.bucket}`, ctx.timeoutMs, undefined, () =>
          ctx.jsm.consumers.delete(ctx.stream, late.name),
        ).catch(() => {}),
      () => {},
    );
    throw err;
  }
}
