/**
 * The KvWatcher of a NATS bucket: one pull consumer per watch, whatever the scope, with the
 * guarantees of an ordered consumer (no acks, delivered in stream order, re-created from the
 * last delivered sequence + 1 after any break in the delivery sequence).
 *
 * - No cursor (or cursor 0): state-sync. DeliverPolicy LastPerSubject hands over the current
 *   message of every subject in scope, then the same consumer continues live — one consumer,
 *   so no gap between the re-list and the live phase.
 * - With a cursor: ByStartSequence at cursor + 1 (delta only). NATS silently clamps a start
 *   below its first retained sequence, so the stream's first sequence is compared with
 *   cursor + 1 before and again after the consumer is created (never resume silently across
 *   a gap) and `CURSOR_EXPIRED` is thrown instead of delivering a gapped stream.
 * - Live floor guard: while a watch sees every message of the bucket, a delivered sequence
 *   that jumps past the last one seen + 1 triggers a first-sequence check; benign interior
 *   gaps pass, an overrun by retention ends with `CURSOR_EXPIRED`. The same check runs after
 *   any re-creation of the consumer, for every scope, and an idle whole-bucket watch probes
 *   the first sequence every `watchStallMs` (evicted revisions with nothing after them).
 * - Lost connection / restarted server: a failed pull re-creates the consumer from the last
 *   delivered sequence + 1, with the resume checks above. A watch that waits longer than
 *   `watchStallMs` with neither a message nor a heartbeat, or whose connection closes
 *   underneath it, ends with `WATCH_FAILED`; it never stalls silently.
 * - Back-pressure: messages are pulled in batches of about {@link PULL_TARGET_BYTES}, at most
 *   two pull requests open at once (the second only while the server reports a backlog, so
 *   it starts the moment the first is full instead of a round trip later), and new pulls are
 *   made only when the caller takes a batch: a slow caller never buffers the whole bucket.
 * - Breaking the loop, aborting the signal or closing the connection deletes the consumer.
 */

import type { ConsumeCallback, Consumer, ConsumerMessages, FetchOptions, JsMsg } from "@nats-io/jetstream";
import { DeliverPolicy } from "@nats-io/jetstream";
import {
  invalidArgument,
  type KvUpdate,
  type KvWatcher,
  liveGapOk,
  resumeStartSequence,
  resumeWindowOk,
  SlipstreamError,
  scopePrefixes,
  type WatchOptions,
  type WatchScope,
  withTimeout,
} from "@slipstream/core";
import { ackReply, fromConsumer, readAckReply, readAckReplyOf } from "./ack-reply.js";
import { type BucketContext, createWatchConsumer, streamInfo, timed, type WatchConsumerConfig } from "./context.js";
import { keyOf, toUpdate } from "./decode.js";
import { JS_CODES, jsApiCode } from "./errors.js";
import { type FilterPlan, planFilters } from "./keys.js";

/**
 * Pull sizing: a pull asks for about this many bytes of messages (by the average size seen
 * so far), so a watch buffers at most about this much whatever its values weigh.
 */
const PULL_TARGET_BYTES = 1024 * 1024;
/** Messages of the first pull, before any size is known (exported for the fault tests). */
export const FIRST_PULL = 256;
/** Bounds of a pull, in messages. */
const MIN_PULL = 16;
const MAX_PULL = 2048;
/** Pull requests a watch keeps open at once while the server reports a backlog. */
const MAX_OPEN_PULLS = 2;
/** Per-message bytes beyond subject and payload (reply subject, headers, framing), for sizing. */
const MSG_OVERHEAD_BYTES = 128;
/** One pull request: its messages count only while it is `live` (not abandoned or over). */
interface Pull {
  live: boolean;
  messages: ConsumerMessages | undefined;
}

/** A break in a consumer's delivery sequence: a message was lost on the way; re-create. */
class DeliveryGap extends Error {}

/** Grace between the two first-sequence reads of the idle floor probe. */
const PROBE_GRACE_MS = 500;
/** How often a watch waiting for the client to reconnect looks again. */
const RECONNECT_POLL_MS = 50;
/** Pause before re-creating the consumer after a failed pull. */
const PULL_RETRY_MS = 250;

/** True when the bucket's stream no longer exists (fatal for a watch). */
function isStreamGone(err: unknown): boolean {
  return jsApiCode(err) === JS_CODES.streamNotFound || /stream not found/i.test(String((err as Error)?.message));
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Pull request lifetime for a stall bound: the idle heartbeat is half of it, and at least
 * four heartbeats fit in `watchStallMs` (nats.js needs expires ≥ 1 s, heartbeats ≤ 5 s here).
 */
export function pullExpiresMs(watchStallMs: number): number {
  return Math.max(1000, Math.min(10_000, Math.floor(watchStallMs / 4) * 2));
}

/** Server-side backstop: a watch consumer nobody pulls from for this long is removed. */
const WATCH_INACTIVE_MS = 120_000;

/** The byte prefixes a scope covers, after checking its shape. */
function scopeToPrefixes(scope: WatchScope): readonly string[] {
  if (typeof scope !== "object" || scope === null) throw new TypeError("scope must be a WatchScope object");
  if (scope.kind !== "all" && scope.kind !== "prefix" && scope.kind !== "prefixes") {
    throw invalidArgument(`unknown watch scope kind ${JSON.stringify((scope as { kind?: unknown }).kind)}`);
  }
  if (scope.kind === "prefixes" && !Array.isArray(scope.prefixes)) {
    throw new TypeError("scope.prefixes must be an array");
  }
  return scopePrefixes(scope);
}

/** The revision a watch resumes after, or undefined for a state-sync. */
function resumeRevision(opts: WatchOptions): bigint | undefined {
  const from = opts.from;
  if (from === undefined || from.isNone) return undefined;
  const rev = from.revision;
  if (rev === undefined) {
    throw invalidArgument(`cursor ${from.toHex()} is not a NATS revision (an 8-byte cursor is required)`);
  }
  return rev === 0n ? undefined : rev;
}

/** Throws CURSOR_EXPIRED unless the stream still holds everything after `revision`. */
function checkWindow(ctx: BucketContext, revision: bigint, firstSeq: bigint, lastSeq: bigint): void {
  if (!resumeWindowOk(revision, firstSeq)) {
    throw new SlipstreamError(
      "CURSOR_EXPIRED",
      `cursor ${revision} of bucket ${ctx.bucket} has expired: the stream's first retained sequence is ${firstSeq}, so revisions ${revision + 1n}..${firstSeq - 1n} are gone; resync`,
    );
  }
  if (revision > lastSeq) {
    throw new SlipstreamError(
      "CURSOR_EXPIRED",
      `cursor ${revision} of bucket ${ctx.bucket} is ahead of the stream (last sequence ${lastSeq}); was the bucket recreated? resync`,
    );
  }
}

/** One running watch: its consumer, its guards and how it ends. */
class WatchSession {
  readonly #ctx: BucketContext;
  readonly #plan: FilterPlan;
  readonly #resumeAfter: bigint | undefined;
  readonly #signal: AbortSignal | undefined;
  /** A state-sync's callback for the end of its re-list (called once, then cleared). */
  #onRelisted: (() => void) | undefined;
  /** True when every message of the bucket reaches this consumer, so any gap is meaningful. */
  readonly #guardGaps: boolean;
  #consumer: Consumer | undefined;
  /** The open pull requests, oldest first (the server fills them in this order). */
  #pulls: Pull[] = [];
  /** Messages delivered by the open pulls and not yet handed over, in arrival order. */
  #queue: JsMsg[] = [];
  /** How the last pull failed, until the pump takes it. */
  #pullError: unknown;
  #wakePump: (() => void) | undefined;
  /** Moving average of message sizes, for pull sizing. */
  #avgMsgBytes: number | undefined;
  /** The client lost its server: the pump re-creates the consumer (jittered) once it is back. */
  #lostConnection = false;
  #failure: SlipstreamError | undefined;
  #ended = false;
  #released: Promise<void> | undefined;
  #opening: Promise<void> | undefined;
  #unregister: (() => void) | undefined;
  #onAbort: (() => void) | undefined;
  #watchdog: NodeJS.Timeout | undefined;
  #waitingSince: number | undefined;
  #lastAlive = Date.now();
  /** Highest stream sequence the consumer has handed us (in scope or not). */
  #lastSeen: bigint | undefined;
  /** A resume is live from its first message; a state-sync once the re-list is drained. */
  #live = false;
  /** Messages received so far (lets the floor probe tell whether anything arrived meanwhile). */
  #received = 0;
  #probing = false;
  #lastProbe = Date.now();
  /** Fires when the watch ends or fails, cutting short any setup or re-creation in flight. */
  readonly #halt = new AbortController();

  constructor(
    ctx: BucketContext,
    plan: FilterPlan,
    resumeAfter: bigint | undefined,
    signal: AbortSignal | undefined,
    onRelisted?: () => void,
  ) {
    this.#ctx = ctx;
    this.#plan = plan;
    this.#resumeAfter = resumeAfter;
    this.#signal = signal;
    this.#onRelisted = resumeAfter === undefined ? onRelisted : undefined;
    this.#guardGaps = plan.subjects.length === 1 && plan.subjects[0] === `${ctx.subjectPrefix}>`;
  }

  /** Ends the watch cleanly (break, abort, connection close). */
  #end(): void {
    this.#ended = true;
    this.#halt.abort();
    this.#stopPulls();
    this.#kick();
  }

  /** Ends the watch with `err`, thrown from the iterator at its next step. */
  #fail(err: SlipstreamError): void {
    if (this.#ended || this.#failure) return;
    this.#failure = err;
    this.#halt.abort();
    this.#stopPulls();
    this.#kick();
  }

  async *run(): AsyncGenerator<KvUpdate[]> {
    const ctx = this.#ctx;
    if (this.#signal?.aborted) return;
    this.#onAbort = () => this.#end();
    this.#signal?.addEventListener("abort", this.#onAbort, { once: true });
    this.#unregister = ctx.resources.add({
      release: () => this.release(),
      clientClosed: () =>
        this.#fail(new SlipstreamError("WATCH_FAILED", `watch of bucket ${ctx.bucket}: the NATS connection closed`)),
      disconnected: () => this.#onDisconnect(),
    });
    if (ctx.resources.closing) {
      throw new SlipstreamError("NOT_CONNECTED", `watch of bucket ${ctx.bucket}: the connection is closed`);
    }
    try {
      this.#opening = this.#open();
      await this.#opening;
    } catch (err) {
      if (this.#failure) throw this.#failure;
      if (this.#ended) return;
      // A refused setup is a failed watch; timeouts, expiry and bad input keep their codes.
      if (SlipstreamError.is(err, "BACKEND")) {
        throw new SlipstreamError("WATCH_FAILED", `watch of bucket ${this.#ctx.bucket}: ${err.message}`, {
          cause: err,
        });
      }
      throw err;
    }
    yield* this.#pump();
  }

  async #open(): Promise<void> {
    this.#consumer = await this.#createConsumer(this.#resumeAfter, this.#halt.signal);
    this.#watchdog = setInterval(() => this.#checkStall(), Math.min(1000, Math.max(50, this.#ctx.watchStallMs / 4)));
    this.#watchdog.unref();
  }

  /**
   * Creates the watch consumer: LastPerSubject for a state-sync (`after` undefined), else
   * ByStartSequence at after + 1. NATS silently clamps a start below its first retained
   * sequence, so for a start sequence the stream's first sequence is checked before and
   * again after the creation (never resume silently across a gap): first_seq only grows,
   * so passing afterwards proves the consumer starts at after + 1.
   */
  async #createConsumer(after: bigint | undefined, signal: AbortSignal | undefined): Promise<Consumer> {
    const ctx = this.#ctx;
    const subjects = this.#plan.subjects;
    const opts: WatchConsumerConfig =
      subjects.length === 1
        ? { filter_subject: subjects[0] as string, inactiveMs: WATCH_INACTIVE_MS }
        : { filter_subjects: [...subjects], inactiveMs: WATCH_INACTIVE_MS };
    if (after === undefined) {
      opts.deliver_policy = DeliverPolicy.LastPerSubject;
    } else {
      const start = resumeStartSequence(after);
      // The window first: a cursor ahead of the stream (a recreated bucket) is CURSOR_EXPIRED,
      // which a fold cures by resyncing, whatever its size.
      const before = await streamInfo(ctx, signal);
      checkWindow(ctx, after, BigInt(before.state.first_seq), BigInt(before.state.last_seq));
      // nats.js carries sequences as JS numbers; refuse what it cannot represent exactly.
      if (start > BigInt(Number.MAX_SAFE_INTEGER)) {
        throw new SlipstreamError(
          "INVALID_ARGUMENT",
          `resume sequence ${start} exceeds 2^53-1, which nats.js cannot represent`,
        );
      }
      opts.deliver_policy = DeliverPolicy.StartSequence;
      opts.opt_start_seq = Number(start);
    }
    const consumer = await createWatchConsumer(
      ctx,
      `creating the watch consumer of bucket ${ctx.bucket}`,
      signal,
      opts,
    );
    if (after !== undefined) {
      try {
        const afterInfo = await streamInfo(ctx, signal);
        checkWindow(ctx, after, BigInt(afterInfo.state.first_seq), BigInt(afterInfo.state.last_seq));
      } catch (err) {
        await this.#deleteConsumer(consumer);
        throw err;
      }
    }
    return consumer;
  }

  /** Resolves once the client is connected, or the watch ends or fails (stall watchdog). */
  async #untilConnected(): Promise<void> {
    while (!this.#ctx.connected() && !this.#halt.signal.aborted) await delay(RECONNECT_POLL_MS);
  }

  /** Deletes `consumer` best effort (bounded; skipped while disconnected). */
  async #deleteConsumer(consumer: Consumer): Promise<void> {
    const ctx = this.#ctx;
    if (!ctx.connected()) return;
    try {
      await withTimeout(`deleting the watch consumer of bucket ${ctx.bucket}`, ctx.timeoutMs, undefined, () =>
        consumer.delete(),
      );
    } catch (err) {
      if (!/not found/i.test(String((err as Error)?.message))) {
        ctx.logger.warn("could not delete watch consumer", { bucket: ctx.bucket, error: String(err) });
      }
    }
  }

  /** Consumer notifications: heartbeats prove liveness; a vanished stream is fatal. */
  async #observe(messages: ConsumerMessages): Promise<void> {
    try {
      for await (const s of messages.status()) {
        switch (s.type) {
          case "heartbeat":
            this.#lastAlive = Date.now();
            break;
          case "stream_not_found":
            this.#fail(
              new SlipstreamError("WATCH_FAILED", `watch of bucket ${this.#ctx.bucket}: the stream was deleted`),
            );
            break;
          case "reset":
            this.#ctx.logger.debug("watch consumer reset", { bucket: this.#ctx.bucket, consumer: s.name });
            break;
          default:
            break;
        }
      }
    } catch {
      // the status iterator ends with the messages
    }
  }

  /** Never stall silently: waiting with neither messages nor heartbeats for too long fails. */
  #checkStall(): void {
    if (this.#waitingSince === undefined) return;
    if (this.#guardGaps && this.#live && !this.#probing && Date.now() - this.#lastProbe >= this.#ctx.watchStallMs) {
      this.#probing = true;
      this.#lastProbe = Date.now();
      void this.#probeFloor().finally(() => {
        this.#probing = false;
      });
    }
    const quiet = Date.now() - Math.max(this.#waitingSince, this.#lastAlive);
    if (quiet > this.#ctx.watchStallMs) {
      this.#fail(
        new SlipstreamError(
          "WATCH_FAILED",
          `watch of bucket ${this.#ctx.bucket}: no message or heartbeat for ${quiet} ms (server unreachable?)`,
        ),
      );
    }
  }

  /**
   * Live floor backstop for an idle watch that sees the whole bucket: messages it has not
   * been handed yet may expire with nothing after them, leaving no gap to notice. If the
   * stream's first sequence has passed last seen + 1 and nothing arrived meanwhile (checked
   * twice, a grace period apart, so a message in flight is not mistaken for a loss), the
   * watch ends with CURSOR_EXPIRED.
   */
  async #probeFloor(): Promise<void> {
    const ctx = this.#ctx;
    const expired = async (): Promise<bigint | undefined> => {
      const seen = this.#lastSeen;
      const received = this.#received;
      if (seen === undefined) return undefined;
      const first = BigInt((await streamInfo(ctx, this.#halt.signal)).state.first_seq);
      if (this.#received !== received || this.#waitingSince === undefined) return undefined;
      return resumeWindowOk(seen, first) ? undefined : first;
    };
    try {
      if ((await expired()) === undefined) return;
      await delay(PROBE_GRACE_MS);
      const first = await expired();
      if (first === undefined) return;
      this.#fail(
        new SlipstreamError(
          "CURSOR_EXPIRED",
          `watch of bucket ${ctx.bucket}: retention removed revisions after ${this.#lastSeen} before they were delivered (first retained ${first}); resync`,
        ),
      );
    } catch (err) {
      ctx.logger.debug("floor probe failed", { bucket: ctx.bucket, error: String(err) });
    }
  }

  /**
   * Opens a pull request (not an endless consume) for about {@link PULL_TARGET_BYTES}.
   * The pump opens one when it has nothing to hand over, and a second one while the server
   * reports a backlog; both only when the caller takes a batch (back-pressure: memory stays
   * bounded whatever the bucket holds). Messages land in {@link #queue} from the client's
   * callback, without a promise each.
   */
  async #startPull(consumer: Consumer): Promise<void> {
    const ctx = this.#ctx;
    const pull: Pull = { live: true, messages: undefined };
    this.#pulls.push(pull);
    // nats.js delivers a fetch to a callback as it does a consume (the same implementation),
    // though FetchOptions does not declare it; the watch tests exercise it on every pull.
    const options: FetchOptions & ConsumeCallback = {
      max_messages: this.#pullSize(),
      expires: pullExpiresMs(ctx.watchStallMs),
      callback: (m: JsMsg) => {
        if (!pull.live) return;
        this.#queue.push(m);
        this.#kick();
      },
    };
    let messages: ConsumerMessages;
    try {
      messages = await timed(ctx, `pulling the watch of bucket ${ctx.bucket}`, undefined, () =>
        consumer.fetch(options),
      );
    } catch (err) {
      this.#dropPull(pull);
      throw err;
    }
    pull.messages = messages;
    if (!pull.live || this.#ended || this.#failure) messages.stop();
    void this.#observe(messages);
    void messages.closed().then(
      (err) => this.#pullClosed(pull, err),
      (err: unknown) => this.#pullClosed(pull, err),
    );
  }

  /** Takes `pull` out of the open ones (its later messages are ignored) and stops it. */
  #dropPull(pull: Pull): void {
    pull.live = false;
    const i = this.#pulls.indexOf(pull);
    if (i >= 0) this.#pulls.splice(i, 1);
    pull.messages?.stop();
  }

  /** Stops every open pull; what they delivered stays queued. */
  #stopPulls(): void {
    for (const pull of this.#pulls.splice(0)) {
      pull.live = false;
      pull.messages?.stop();
    }
  }

  #pullClosed(pull: Pull, err: unknown): void {
    if (!pull.live) return;
    this.#dropPull(pull);
    if (err) {
      // What arrived before the failure is handed over (its delivery sequence is checked);
      // then the consumer is re-created from the last delivered sequence.
      this.#pullError = err;
      this.#stopPulls();
    } else if (!this.#ended && !this.#failure) {
      // The pull is over (full, or expired by the server, which proves it is alive).
      this.#lastAlive = Date.now();
    }
    this.#kick();
  }

  /** Messages per pull: about PULL_TARGET_BYTES of the sizes seen so far, within bounds. */
  #pullSize(): number {
    const avg = this.#avgMsgBytes;
    if (avg === undefined) return FIRST_PULL;
    return Math.max(MIN_PULL, Math.min(MAX_PULL, Math.floor(PULL_TARGET_BYTES / Math.max(1, avg))));
  }

  /** Wakes the pump (a message, the end of a pull, a failure or the end of the watch). */
  #kick(): void {
    const wake = this.#wakePump;
    this.#wakePump = undefined;
    wake?.();
  }

  /** Resolves at the next {@link #kick}. */
  #nextKick(): Promise<void> {
    return new Promise((resolve) => {
      this.#wakePump = resolve;
    });
  }

  /**
   * The client lost its server. The pull is dropped now (so nats.js does not re-create the
   * consumer by itself the instant it reconnects, with every other watch of the process),
   * and the pump re-creates it after the reconnect and a random spread (herd control).
   */
  #onDisconnect(): void {
    if (this.#ended || this.#failure) return;
    this.#lostConnection = true;
    this.#abandonPull();
    this.#kick();
  }

  /** Drops the open pulls and their queued messages: the consumer is re-created. */
  #abandonPull(): void {
    this.#stopPulls();
    this.#pullError = undefined;
    this.#queue = [];
  }

  async *#pump(): AsyncGenerator<KvUpdate[]> {
    const ctx = this.#ctx;
    const consumer = this.#consumer;
    if (!consumer) return;
    // Highest stream sequence the consumer has handed us (in scope or not).
    this.#lastSeen = this.#resumeAfter;
    let lastSeen = this.#resumeAfter === undefined ? undefined : Number(this.#resumeAfter);
    // The consumer the messages come from, and the last delivery sequence it handed over
    // (the pump checks the order itself: every message is the previous one's + 1). A message
    // from another consumer needs the first_seq check of a re-creation.
    const created = await consumer.info(true);
    let consumerName = created.name;
    let lastDelivered = 0;
    const ack = ackReply();
    // The reply subjects of the consumer in use start with this (see readAckReplyOf).
    let prefixOf = "";
    let ackPrefix = "";
    // A resume is live from its first message; a state-sync once its re-list is drained:
    // the re-list is the first num_pending messages (counted, so a busy bucket whose pending
    // never reaches 0 still goes live), or earlier if the server reports nothing pending.
    this.#live = this.#resumeAfter !== undefined || created.num_pending === 0;
    let relistLeft = this.#live ? 0 : created.num_pending;
    // An empty re-list is over before it starts.
    if (this.#live) this.#relisted();
    let recreate = false;
    /** The next re-creation follows a lost connection: spread it. */
    let spreadFirst = false;
    const subjectPrefix = ctx.subjectPrefix;
    const accepts = this.#plan.accepts;
    const acceptsAll = !this.#plan.clientFiltered;
    while (true) {
      if (this.#failure) throw this.#failure;
      if (this.#ended || ctx.resources.closing) return;
      this.#waitingSince ??= Date.now();
      let queue: JsMsg[];
      try {
        if (recreate) {
          // Resume from the last delivered revision + 1, with the same expiry checks as a
          // resume: a gap is never crossed silently. Nothing delivered yet → start over.
          // A request sent while disconnected would only wait out its timeout.
          await this.#untilConnected();
          if (spreadFirst && ctx.watchRecreateSpreadMs > 0) {
            // Herd control: every watch of every node reconnects at about the same moment.
            await delay(Math.random() * ctx.watchRecreateSpreadMs);
          }
          spreadFirst = false;
          if (this.#failure) throw this.#failure;
          if (this.#ended) return;
          const old = this.#consumer;
          this.#consumer = undefined;
          if (old) await this.#deleteConsumer(old);
          if (this.#failure) throw this.#failure;
          if (this.#ended) return;
          // A release from now on waits for this creation and deletes what it made (before
          // the connection it needs for that is closed).
          const creating = this.#createConsumer(this.#lastSeen, this.#halt.signal).then((made) => {
            this.#consumer = made;
            return made;
          });
          this.#opening = creating.then(
            () => {},
            () => {},
          );
          const fresh = await creating;
          if (this.#failure) throw this.#failure;
          if (this.#ended) return;
          const freshInfo = await fresh.info(true);
          consumerName = freshInfo.name;
          lastDelivered = 0;
          // From a sequence every message is delivered, so gaps mean loss: live. A state-sync
          // that had delivered nothing yet starts its re-list over.
          this.#live = this.#lastSeen !== undefined || freshInfo.num_pending === 0;
          relistLeft = this.#live ? 0 : freshInfo.num_pending;
          if (this.#live && this.#lastSeen === undefined) this.#relisted();
          recreate = false;
          ctx.logger.info("watch consumer re-created", { bucket: ctx.bucket, cursor: this.#lastSeen?.toString() });
        }
        const c = this.#consumer;
        if (!c) throw new SlipstreamError("WATCH_FAILED", `watch of bucket ${ctx.bucket}: no consumer`);
        if (this.#lostConnection) {
          this.#lostConnection = false;
          this.#abandonPull();
          recreate = true;
          spreadFirst = true;
          ctx.logger.debug("watch lost its server; re-creating the consumer after the reconnect", {
            bucket: ctx.bucket,
          });
          continue;
        }
        if (this.#queue.length === 0) {
          if (this.#pullError !== undefined) {
            const err = this.#pullError;
            this.#pullError = undefined;
            throw err;
          }
          if (this.#pulls.length === 0) await this.#startPull(c);
          if (this.#queue.length === 0 && this.#pullError === undefined && this.#pulls.length > 0) {
            if (this.#failure) throw this.#failure;
            if (this.#ended) return;
            await this.#nextKick();
          }
          continue;
        }
        queue = this.#queue;
        this.#queue = [];
      } catch (err) {
        this.#abandonPull();
        if (this.#failure) throw this.#failure;
        if (this.#ended) return;
        if (SlipstreamError.is(err, "CURSOR_EXPIRED") || SlipstreamError.is(err, "WATCH_FAILED")) throw err;
        if (isStreamGone(err)) {
          throw new SlipstreamError("WATCH_FAILED", `watch of bucket ${ctx.bucket}: the stream is gone`, {
            cause: err,
          });
        }
        // Consumer lost, no responders, timeouts while reconnecting: re-create the consumer
        // ourselves. The stall watchdog bounds how long this may go on.
        ctx.logger.debug("watch pull failed; re-creating the consumer", { bucket: ctx.bucket, error: String(err) });
        recreate = true;
        await delay(PULL_RETRY_MS);
        continue;
      }
      if (this.#failure) throw this.#failure;
      if (this.#ended || ctx.resources.closing) return;
      this.#waitingSince = undefined;
      this.#lastAlive = Date.now();
      const out: KvUpdate[] = [];
      // Sizes of the messages handled here (a gap check or the re-list's end may stop early).
      let bytes = 0;
      let sized = 0;
      // The re-list ended with this batch: hand it over, then say so, then the live updates.
      let relistEnded = false;
      // Messages the server still held for us after the last one handled.
      let backlog = 0;
      for (let i = 0; i < queue.length; i++) {
        const m = queue[i] as JsMsg;
        // The delivery info, read in place (nats.js's m.info allocates a dozen strings). The
        // reply subject is on nats.js's JsMsg implementation, not on its interface.
        const reply = (m as JsMsg & { readonly reply?: string }).reply ?? "";
        if (consumerName !== prefixOf) {
          prefixOf = consumerName;
          ackPrefix = `$JS.ACK.${ctx.stream}.${consumerName}.`;
        }
        // The short form of the consumer in use (the usual case) names that consumer.
        let recreated = false;
        if (!readAckReplyOf(reply, ackPrefix, ack)) {
          if (!readAckReply(reply, ack)) {
            throw new SlipstreamError(
              "WATCH_FAILED",
              `watch of bucket ${ctx.bucket}: a message without JetStream delivery info (reply subject ${JSON.stringify(reply.slice(0, 200))})`,
            );
          }
          recreated = !fromConsumer(reply, ack, consumerName);
        }
        const seq = ack.streamSequence;
        const delivered = ack.deliverySequence;
        if (delivered !== (recreated ? 1 : lastDelivered + 1)) {
          // A message was lost between the server and us: hand over what came before it,
          // then re-create the consumer from the last delivered sequence + 1.
          this.#abandonPull();
          this.#pullError = new DeliveryGap(
            `delivery ${delivered} of consumer ${reply.slice(ack.consumerStart, ack.consumerEnd)} after ${recreated ? 0 : lastDelivered}`,
          );
          break;
        }
        if (lastSeen !== undefined && seq <= lastSeen) {
          if (recreated) consumerName = reply.slice(ack.consumerStart, ack.consumerEnd);
          lastDelivered = delivered;
          continue;
        }
        // liveGapSuspect, on numbers (no bigint per message).
        if (lastSeen !== undefined && seq > lastSeen + 1 && (recreated || (this.#live && this.#guardGaps))) {
          // Hand over what came before the gap first; the check needs a round trip.
          if (out.length > 0) {
            this.#queue = queue.slice(i).concat(this.#queue);
            break;
          }
          await this.#checkGap(BigInt(lastSeen), BigInt(seq));
        }
        if (recreated) consumerName = reply.slice(ack.consumerStart, ack.consumerEnd);
        lastDelivered = delivered;
        backlog = ack.pending;
        lastSeen = seq;
        this.#received++;
        let lastOfRelist = false;
        if (!this.#live && (--relistLeft <= 0 || ack.pending === 0)) {
          this.#live = true;
          lastOfRelist = this.#onRelisted !== undefined;
        }
        const data = m.data;
        bytes += data.length + m.subject.length;
        sized++;
        const key = keyOf(subjectPrefix, m.subject);
        if (key !== undefined && (acceptsAll || accepts(key))) out.push(toUpdate(key, seq, m.headers, data));
        if (lastOfRelist) {
          this.#queue = queue.slice(i + 1).concat(this.#queue);
          relistEnded = true;
          break;
        }
      }
      if (lastSeen !== undefined) this.#lastSeen = BigInt(lastSeen);
      if (sized > 0) {
        const avg = bytes / sized + MSG_OVERHEAD_BYTES;
        this.#avgMsgBytes = this.#avgMsgBytes === undefined ? avg : (this.#avgMsgBytes * 3 + avg) / 4;
      }
      // Catching up: have the next pull waiting at the server before this one is full, so
      // the server goes on sending instead of waiting a round trip for our next request.
      const c = this.#consumer;
      if (backlog > 0 && c && this.#pulls.length < MAX_OPEN_PULLS && this.#pullError === undefined) {
        try {
          await this.#startPull(c);
        } catch (err) {
          this.#pullError ??= err;
        }
      }
      if (out.length > 0) yield out;
      if (relistEnded) this.#relisted();
    }
  }

  /** Tells the watch's owner, once, that the re-list has been handed over in full. */
  #relisted(): void {
    const cb = this.#onRelisted;
    this.#onRelisted = undefined;
    cb?.();
  }

  /** A delivered sequence jumped past last seen + 1: benign unless retention overran us. */
  async #checkGap(lastSeen: bigint, seq: bigint): Promise<void> {
    const ctx = this.#ctx;
    let first: bigint;
    try {
      first = BigInt((await streamInfo(ctx, this.#halt.signal)).state.first_seq);
    } catch (err) {
      if (this.#failure) throw this.#failure;
      throw new SlipstreamError("WATCH_FAILED", `watch of bucket ${ctx.bucket}: cannot check a gap after ${lastSeen}`, {
        cause: err,
      });
    }
    if (!liveGapOk(lastSeen, first)) {
      throw new SlipstreamError(
        "CURSOR_EXPIRED",
        `watch of bucket ${ctx.bucket}: retention overran the watch (next delivered ${seq} after ${lastSeen}, first retained ${first}); resync`,
      );
    }
  }

  /** Stops the watch and deletes its consumer (idempotent, bounded, never throws). */
  release(): Promise<void> {
    this.#released ??= this.#doRelease();
    return this.#released;
  }

  async #doRelease(): Promise<void> {
    this.#end();
    clearInterval(this.#watchdog);
    if (this.#onAbort) this.#signal?.removeEventListener("abort", this.#onAbort);
    this.#unregister?.();
    // A consumer being created right now must be deleted too: wait for the creation.
    await this.#opening?.catch(() => {});
    this.#stopPulls();
    const c = this.#consumer;
    this.#consumer = undefined;
    // Disconnected: nobody to ask, and waiting out a timeout would only delay the caller.
    // The consumer is in memory with an inactivity threshold; the server drops it itself.
    if (c) await this.#deleteConsumer(c);
  }
}

export class NatsKvWatcher implements KvWatcher {
  readonly #ctx: BucketContext;

  /** @internal vended by `NatsConnection.store`. */
  constructor(ctx: BucketContext) {
    this.#ctx = ctx;
  }

  /**
   * Watches `scope`; see the module comment. An empty `prefixes` list watches nothing: the
   * iterator ends at once without touching the server. Each `[Symbol.asyncIterator]()` call
   * starts its own watch.
   */
  watch(scope: WatchScope, opts: WatchOptions = {}): AsyncIterable<KvUpdate> {
    const ctx = this.#ctx;
    return {
      [Symbol.asyncIterator]: () => flatten(watchIterator(ctx, scope, opts)),
    };
  }

  /**
   * The same watch as {@link NatsKvWatcher.watch}, handed over as arrays of whatever the
   * server delivered together (never empty): one promise per array instead of per update.
   */
  watchBatches(scope: WatchScope, opts: WatchOptions = {}): AsyncIterable<readonly KvUpdate[]> {
    const ctx = this.#ctx;
    return {
      [Symbol.asyncIterator]: () => watchIterator(ctx, scope, opts),
    };
  }
}

/** One update at a time out of an iterator of batches; `return()` passes straight through. */
function flatten(inner: AsyncIterator<readonly KvUpdate[]>): AsyncIterator<KvUpdate> {
  let batch: readonly KvUpdate[] = [];
  let i = 0;
  return {
    next: async () => {
      while (i >= batch.length) {
        const r = await inner.next();
        if (r.done) return { done: true, value: undefined };
        batch = r.value;
        i = 0;
      }
      return { done: false, value: batch[i++] as KvUpdate };
    },
    return: async (value?: unknown) => {
      batch = [];
      i = 0;
      await inner.return?.();
      return { done: true, value: value as undefined };
    },
  };
}

/**
 * An iterator whose `return()` takes effect even while a `next()` is pending (an async
 * generator would queue it behind that `next()`, which may wait for a message forever).
 */
function watchIterator(ctx: BucketContext, scope: WatchScope, opts: WatchOptions): AsyncIterator<KvUpdate[]> {
  let session: WatchSession | undefined;
  const gen = runWatch(ctx, scope, opts, (s) => {
    session = s;
  });
  return {
    next: () => gen.next(),
    return: async (value?: unknown) => {
      await session?.release();
      await gen.return(undefined);
      return { done: true, value: value as undefined };
    },
    throw: (err?: unknown) => gen.throw(err),
  };
}

async function* runWatch(
  ctx: BucketContext,
  scope: WatchScope,
  opts: WatchOptions,
  onSession: (s: WatchSession) => void,
): AsyncGenerator<KvUpdate[]> {
  const prefixes = scopeToPrefixes(scope);
  const plan = planFilters(ctx.subjectPrefix, prefixes, ctx.multiFilter());
  const resumeAfter = resumeRevision(opts);
  if (resumeAfter !== undefined) resumeStartSequence(resumeAfter);
  if (plan.subjects.length === 0) return;
  const session = new WatchSession(ctx, plan, resumeAfter, opts.signal, opts.onRelisted);
  onSession(session);
  try {
    yield* session.run();
  } finally {
    await session.release();
  }
}
