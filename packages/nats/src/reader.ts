/**
 * The KvReader of a NATS bucket. `get`/`entry` read the last message of the key's subject
 * (direct get when the stream allows it). `keys`/`scan` stream the last message per subject
 * through ONE ordered consumer (ack none, so never capped by max_ack_pending), headers only
 * for `keys`, and always delete that consumer — also on error, timeout or early break.
 */

import type { Consumer, ConsumerMessages, JsMsg, StoredMsg } from "@nats-io/jetstream";
import { DeliverPolicy } from "@nats-io/jetstream";
import {
  type KvEntry,
  type KvReader,
  type OpOptions,
  SlipstreamError,
  throwIfAborted,
  VersionToken,
  withTimeout,
} from "@slipstream/core";
import { type BucketContext, createOrderedConsumer, timed } from "./context.js";
import { type KvOperation, keyOf, MSG_SIZE, operationOf } from "./decode.js";
import { mapNatsError } from "./errors.js";
import { planFilters, validateKey } from "./keys.js";

/** The last message stored for one key. */
export interface LastMessage {
  operation: KvOperation;
  revision: bigint;
  value: Uint8Array;
}

/** Reads the last message of `key`'s subject; undefined when the subject holds none. */
export async function lastMessage(
  ctx: BucketContext,
  key: string,
  signal?: AbortSignal,
): Promise<LastMessage | undefined> {
  const subject = `${ctx.subjectPrefix}${key}`;
  const sm: StoredMsg | null = await timed(ctx, `get ${key}`, signal, async () => {
    try {
      return ctx.direct
        ? await ctx.jsm.direct.getMessage(ctx.stream, { last_by_subj: subject })
        : await ctx.jsm.streams.getMessage(ctx.stream, { last_by_subj: subject });
    } catch (err) {
      // Older clients/servers report "no message found" as an error instead of null.
      if (/no message found|message not found/i.test(String((err as Error)?.message))) return null;
      throw err;
    }
  });
  if (sm === null || sm.subject !== subject) return undefined;
  return { operation: operationOf(sm.header), revision: BigInt(sm.seq), value: sm.data };
}

/** Options of a listing consumer. */
interface ListOptions extends OpOptions {
  headersOnly: boolean;
}

/** Messages pulled per listing batch (the most a listing buffers). */
const LIST_BATCH = 1000;

/** Ordered consumer inactivity backstop: the server drops a listing consumer we failed to delete. */
const LIST_INACTIVE_MS = 30_000;

/**
 * Streams the last message per subject under `prefix` through one ordered consumer. Each
 * wait for the next message is bounded by the timeout; the consumer is deleted whatever
 * happens (finally), bounded as well.
 */
async function* listLast(ctx: BucketContext, prefix: string, opts: ListOptions): AsyncGenerator<JsMsg> {
  const plan = planFilters(ctx.subjectPrefix, [prefix], true);
  const subject = plan.subjects[0] as string;
  throwIfAborted(opts.signal, "listing");
  let consumer: Consumer | undefined;
  let messages: ConsumerMessages | undefined;
  let release: (() => void) | undefined;
  const what = `listing ${prefix === "" ? "all keys" : `prefix ${prefix}`} of bucket ${ctx.bucket}`;
  const cleanup = async (): Promise<void> => {
    release?.();
    release = undefined;
    messages?.stop();
    const c = consumer;
    consumer = undefined;
    if (c && ctx.connected()) {
      await withTimeout(`deleting the ${what} consumer`, ctx.timeoutMs, undefined, () => c.delete()).catch((err) =>
        ctx.logger.warn("could not delete listing consumer", { bucket: ctx.bucket, error: String(err) }),
      );
    }
  };
  try {
    consumer = await createOrderedConsumer(ctx, what, opts.signal, {
      filter_subjects: subject,
      deliver_policy: DeliverPolicy.LastPerSubject,
      headers_only: opts.headersOnly,
      inactive_threshold: LIST_INACTIVE_MS,
    });
    release = ctx.resources.add({ release: cleanup });
    const info = await consumer.info(true);
    // The listing is the last message per subject as of now: exactly the consumer's initial
    // pending count. Messages written meanwhile are not part of it (they would repeat keys
    // and, under steady writes, never let the listing end).
    const total = info.num_pending;
    if (total === 0) return;
    let delivered = 0;
    const name = info.name;
    const c = consumer;
    let it: AsyncIterator<JsMsg> | undefined;
    let lastProgress = Date.now();
    while (true) {
      // Batches, not an endless consume: at most one batch is buffered (bounded memory).
      if (!it) {
        if (Date.now() - lastProgress > ctx.timeoutMs) {
          throw new SlipstreamError("TIMEOUT", `${what} made no progress for ${ctx.timeoutMs} ms`);
        }
        messages = await timed(ctx, what, opts.signal, () =>
          c.fetch({ max_messages: LIST_BATCH, expires: Math.min(ctx.timeoutMs, 5000) }),
        );
        it = messages[Symbol.asyncIterator]();
      }
      const cur = it;
      const r = await withTimeout(what, ctx.timeoutMs, opts.signal, () => cur.next());
      // Closing the connection ends a listing at once, even with messages still buffered.
      if (ctx.resources.closing) throw new SlipstreamError("NOT_CONNECTED", `${what}: the connection was closed`);
      if (r.done) {
        it = undefined;
        continue;
      }
      lastProgress = Date.now();
      const m = r.value;
      if (m.info.consumer !== name) {
        // nats.js re-created the ordered consumer (reconnect): it now replays history from a
        // sequence instead of the last value per key, so the listing would repeat keys.
        throw new SlipstreamError("BACKEND", `${what}: interrupted by a reconnect; retry the listing`);
      }
      const pending = m.info.pending;
      delivered++;
      if (plan.accepts(keyOf(ctx.subjectPrefix, m.subject) ?? "")) yield m;
      if (pending === 0 || delivered >= total) return;
    }
  } catch (err) {
    throw mapNatsError(err, what);
  } finally {
    await cleanup();
  }
}

function isLive(m: JsMsg, headersOnly: boolean): boolean {
  if (operationOf(m.headers) !== "PUT") return false;
  // Empty-value CAS tombstones are not live keys (get hides them too).
  if (headersOnly) return (m.headers?.get(MSG_SIZE) ?? "") !== "0";
  return m.data.length > 0;
}

export class NatsKvReader implements KvReader {
  readonly #ctx: BucketContext;

  /** @internal vended by `NatsConnection.store`. */
  constructor(ctx: BucketContext) {
    this.#ctx = ctx;
  }

  async get(key: string, opts?: OpOptions): Promise<KvEntry | undefined> {
    const e = await this.entry(key, opts);
    return e === undefined || e.value.length === 0 ? undefined : e;
  }

  async entry(key: string, opts?: OpOptions): Promise<KvEntry | undefined> {
    validateKey(key);
    const last = await lastMessage(this.#ctx, key, opts?.signal);
    if (last === undefined || last.operation !== "PUT") return undefined;
    return { key, value: last.value, version: VersionToken.fromRevision(last.revision) };
  }

  async *keys(prefix = "", opts?: OpOptions): AsyncIterable<string> {
    const ctx = this.#ctx;
    for await (const m of listLast(ctx, prefix, { ...opts, headersOnly: true })) {
      const key = keyOf(ctx.subjectPrefix, m.subject);
      if (key !== undefined && isLive(m, true)) yield key;
    }
  }

  async *scan(prefix = "", opts?: OpOptions): AsyncIterable<KvEntry> {
    const ctx = this.#ctx;
    for await (const m of listLast(ctx, prefix, { ...opts, headersOnly: false })) {
      const key = keyOf(ctx.subjectPrefix, m.subject);
      if (key !== undefined && isLive(m, false)) {
        yield { key, value: m.data, version: VersionToken.fromRevision(BigInt(m.seq)) };
      }
    }
  }
}
