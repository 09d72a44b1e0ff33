/**
 * watchApplied: the loop that turns a watch into applied, durable, resumable state without
 * ever skipping an update.
 *
 * One async loop owns everything (batch, cursor, store, exports), so a flush, a resync step
 * and an export never interleave. It pulls one update at a time from the watch, and only
 * when it has room: a slow `apply` or a failing store slows the watch instead of buffering.
 */

import type {
  ExportManifest,
  ExportOptions,
  KvReader,
  KvUpdate,
  KvWatcher,
  Logger,
  MassDeleteGuard,
  MassDeleteInfo,
  ResolvedMassDeleteGuard,
  SnapshotStore,
  WatchOptions,
  WatchScope,
} from "@slipstream/core";
import {
  askMassDelete,
  assertScopeCovers,
  coveringPrefixes,
  cursorRank,
  foldScopeOf,
  invalidArgument,
  massDeleteTrips,
  resolveMassDeleteGuard,
  SlipstreamError,
  scopePrefixes,
  silentLogger,
  sleep,
  updateKey,
  updateVersion,
  VersionToken,
  WatchCursor,
} from "@slipstream/core";

/** Batching of {@link watchApplied}. */
export interface BatchOptions {
  /** A batch closes this long after its first update arrived. @defaultValue 10 */
  windowMs?: number;
  /**
   * A batch closes when it holds this many updates (parse-rejected ones count). Large
   * batches are what make a bulk load fast (one store commit per batch); the window bounds
   * the latency of a trickle. @defaultValue 1000
   */
  max?: number;
  /**
   * Read-ahead: updates pulled from the watch but not yet batched. The watch is read only
   * while this has room (and {@link BatchOptions.bufferBytes} too). @defaultValue 4096
   */
  buffer?: number;
  /**
   * Read-ahead in value bytes: the watch is read only while the buffered values weigh less,
   * so large values cannot make the read-ahead large. @defaultValue 8 MiB
   */
  bufferBytes?: number;
}

/** Retry pacing of {@link watchApplied} (exponential with full jitter, capped). */
export interface RetryOptions {
  /** First re-subscribe delay. @defaultValue 100 */
  resubscribeInitialMs?: number;
  /** Largest re-subscribe delay. @defaultValue 5000 */
  resubscribeMaxMs?: number;
  /** First store-commit retry delay. @defaultValue 50 */
  commitInitialMs?: number;
  /** Largest store-commit retry delay. @defaultValue 2000 */
  commitMaxMs?: number;
  /** Consecutive failed store commits that stop the watch. @defaultValue 16 */
  maxCommitFailures?: number;
}

/** Options of {@link watchApplied}. */
export interface WatchAppliedOptions<U> {
  watcher: KvWatcher;
  scope: WatchScope;
  /** Resume after this cursor. @defaultValue `store.cursor` when a store is given, else none (state-sync) */
  resume?: WatchCursor;
  /** Lists live keys for a resync after `CURSOR_EXPIRED` (needs `store` too). */
  reader?: KvReader;
  /**
   * Durable fold: each flush commits the raw batch and its cursor here, atomically. A fold
   * imported for a narrower scope (`store.scope`) must cover `scope` (`SCOPE_NOT_COVERED`
   * otherwise, thrown here).
   */
  store?: SnapshotStore;
  batch?: BatchOptions;
  /** Maps an update to your domain type; `undefined` skips it (the cursor still moves past it). */
  parse: (update: KvUpdate) => U | undefined;
  /** Applies one batch (never empty). Throwing stops the watch with that error. */
  apply: (batch: U[]) => void | Promise<void>;
  /** Called after each flush that moved the cursor, once the store has committed it. Throwing stops the watch. */
  onApplied?: (cursor: WatchCursor) => void | Promise<void>;
  /** Aborting stops the watch like {@link AppliedWatch.stop}. */
  signal?: AbortSignal;
  logger?: Logger;
  retry?: RetryOptions;
  /**
   * The mass-delete guard of a resync: when the keys that vanished from the bucket are more
   * than `maxShare` of the fold's keys in scope and at least `minKeys`, the resync does not
   * delete them — the watch stops with `MASS_DELETE_REFUSED` and the fold stays as it was
   * (unless `onMassDelete` returns true). A wrongly purged or recreated bucket then cannot
   * empty every node of a fleet at once. `false` turns the guard off.
   * @defaultValue `{ maxShare: 0.5, minKeys: 100 }`
   */
  massDelete?: MassDeleteGuard | false;
}

// The guard's options and report are shared with the import guard (importRemote's replace).
export type { MassDeleteGuard, MassDeleteInfo } from "@slipstream/core";

/** Observable counters of a running {@link AppliedWatch}. */
export interface AppliedWatchStats {
  /** Updates received from the watch (synthetic resync deletes excluded). */
  received: number;
  /** Flushes that completed (apply, cursor, commit, onApplied). */
  flushes: number;
  /** Times the watch was re-subscribed after it ended or failed. */
  resubscribes: number;
  /** Times an expired cursor forced a resync. */
  resyncs: number;
  /** Synthetic deletes applied by resyncs. */
  syntheticDeletes: number;
  /** Store commits that failed (each was retried). */
  commitFailures: number;
}

/**
 * How long {@link AppliedWatch.requestExport} waits by default for the store to quiesce
 * before exporting (ms): a fold just loaded in bulk needs about a second per million keys.
 */
export const DEFAULT_EXPORT_QUIESCE_MS = 10_000;

/** A running {@link watchApplied} loop. */
export interface AppliedWatch extends AsyncDisposable {
  /** Resolves to the final applied cursor after `stop()`/abort; rejects with the fatal error. */
  readonly done: Promise<WatchCursor>;
  /** The cursor of the last completed flush: applied, and committed when there is a store. */
  readonly cursor: WatchCursor;
  readonly stats: Readonly<AppliedWatchStats>;
  /**
   * Flushes the pending batch, then exports the store between two flushes, so the artifact's
   * cursor is exactly the applied cursor. Errors reach the caller only; the watch goes on.
   * Without a store → `BACKEND`.
   *
   * First, while the watch goes on applying, it waits up to `opts.quiesceMs` (default
   * {@link DEFAULT_EXPORT_QUIESCE_MS}; 0 to skip) for the store to {@link SnapshotStore.quiesce}
   * (LevelDB: no compaction due), so the artifact does not hand a compaction backlog to
   * every node that bootstraps from it; the export then runs whether or not it did.
   */
  requestExport(destDir: string, opts?: ExportOptions): Promise<ExportManifest>;
  /** Flushes and commits what is pending, ends the watch and returns the final cursor (= `done`). */
  stop(): Promise<WatchCursor>;
}

interface ExportJob {
  destDir: string;
  opts: ExportOptions | undefined;
  resolve: (m: ExportManifest) => void;
  reject: (err: unknown) => void;
}

/** One subscription: a pump reads the watch into a bounded read-ahead buffer. */
interface Subscription {
  ctl: AbortController;
  iter: AsyncIterator<readonly KvUpdate[]> | undefined;
  /** Read-ahead, as the watch handed it over: arrays of updates (the first partly taken). */
  batches: (readonly KvUpdate[])[];
  /** Index of the next update in `batches[0]`. */
  head: number;
  /** Updates in `batches` not yet taken. */
  buffered: number;
  /** Value bytes of the arrays in `batches` (an array counts until it is fully taken). */
  bufferedBytes: number;
  /** Value bytes of each array in `batches`. */
  batchBytes: number[];
  /** Updates pushed into `batches` so far, and taken out of it. */
  pushed: number;
  taken: number;
  /** A state-sync's re-list ends after this many updates (set by `onRelisted`). */
  relistedAt: number | undefined;
  /** How the watch ended (after the buffer is drained). */
  terminal: { kind: "end" } | { kind: "error"; error: unknown } | undefined;
  /** The pump is awaiting iter.next(). */
  pending: boolean;
  closed: boolean;
  /** Resolves the pump's wait for room in the buffer. */
  room: (() => void) | undefined;
}

type Outcome = { kind: "stop" } | { kind: "end" } | { kind: "error"; error: unknown };

function now(): number {
  return performance.now();
}

/** Updates taken from the read-ahead in one synchronous run of the loop, at most. */
const TAKE_RUN = 512;

/**
 * The watch as an iterator of arrays: the watcher's own batches when it has
 * `watchBatches`, else one-update arrays.
 */
function batchesOf(watcher: KvWatcher, scope: WatchScope, opts: WatchOptions): AsyncIterator<readonly KvUpdate[]> {
  if (typeof watcher.watchBatches === "function") return watcher.watchBatches(scope, opts)[Symbol.asyncIterator]();
  const inner = watcher.watch(scope, opts)[Symbol.asyncIterator]();
  const single: AsyncIterator<readonly KvUpdate[]> = {
    next: async () => {
      const r = await inner.next();
      return r.done ? { done: true, value: undefined } : { done: false, value: [r.value] };
    },
  };
  if (inner.return)
    single.return = async () => {
      await inner.return?.();
      return { done: true, value: undefined };
    };
  return single;
}

function jittered(attempt: number, initialMs: number, maxMs: number): number {
  const ceiling = Math.min(maxMs, initialMs * 2 ** Math.min(attempt, 30));
  return Math.round(ceiling / 2 + Math.random() * (ceiling / 2));
}

function describeError(err: unknown): string {
  if (SlipstreamError.is(err)) return `${err.code}: ${err.message}`;
  return err instanceof Error ? err.message : String(err);
}

/**
 * Failures a re-subscribe cannot cure: bad input (a cursor the watcher cannot resume, a bad
 * scope), a closed connection, and programmer errors thrown by the watcher.
 */
function isPermanent(err: unknown): boolean {
  if (SlipstreamError.is(err)) return err.code === "INVALID_ARGUMENT" || err.code === "NOT_CONNECTED";
  return err instanceof TypeError;
}

function compareKeys(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}

function positiveInt(value: number | undefined, fallback: number, what: string): number {
  if (value === undefined) return fallback;
  if (typeof value !== "number" || !Number.isInteger(value) || value < 1) {
    throw invalidArgument(`${what} must be an integer ≥ 1, got ${String(value)}`);
  }
  return value;
}

function nonNegative(value: number | undefined, fallback: number, what: string): number {
  if (value === undefined) return fallback;
  if (typeof value !== "number" || !Number.isFinite(value) || value < 0) {
    throw invalidArgument(`${what} must be a finite number ≥ 0, got ${String(value)}`);
  }
  return value;
}

class AppliedLoop<U> implements AppliedWatch {
  readonly done: Promise<WatchCursor>;
  readonly #stats: AppliedWatchStats = {
    received: 0,
    flushes: 0,
    resubscribes: 0,
    resyncs: 0,
    syntheticDeletes: 0,
    commitFailures: 0,
  };

  readonly #watcher: KvWatcher;
  readonly #scope: WatchScope;
  readonly #reader: KvReader | undefined;
  readonly #store: SnapshotStore | undefined;
  readonly #parse: (u: KvUpdate) => U | undefined;
  readonly #apply: (batch: U[]) => void | Promise<void>;
  readonly #onApplied: ((c: WatchCursor) => void | Promise<void>) | undefined;
  readonly #log: Logger;
  readonly #windowMs: number;
  readonly #max: number;
  readonly #bufferSize: number;
  readonly #bufferBytes: number;
  readonly #retry: Required<RetryOptions>;
  readonly #signal: AbortSignal | undefined;
  readonly #massDelete: ResolvedMassDeleteGuard | undefined;

  /** Cursor after the last apply returned (cursor after apply: never advanced on receipt). */
  #applied: WatchCursor;
  /** Cursor of the last completed flush (committed to the store when there is one). */
  #committed: WatchCursor;

  // The open batch.
  #batch: U[] = [];
  #raw: KvUpdate[] = [];
  #received = 0;
  #high: VersionToken | undefined;
  /** The commit (then onApplied) of the last flush while it runs. */
  #inflight: Promise<void> | undefined;
  /**
   * After a resync's synthetic deletes, until its re-list ends: the keys the resync listed
   * live that the re-list has not delivered yet.
   */
  #relistCheck: { unconfirmed: Set<string> } | undefined;
  /** How a commit in flight failed (fatal), until the loop rethrows it. */
  #inflightFailure: { error: unknown } | undefined;
  #deadline: number | undefined;

  #stopping = false;
  #finished = false;
  readonly #stopCtl = new AbortController();
  #exports: ExportJob[] = [];
  #wake: () => void = () => {};
  #wakeP: Promise<void>;
  #timer: NodeJS.Timeout | undefined;
  #resubscribeAttempt = 0;
  /** Updates received on the current subscription. */
  #subReceived = 0;
  readonly #onAbort = () => this.#requestStop();

  constructor(opts: WatchAppliedOptions<U>) {
    if (typeof opts !== "object" || opts === null) throw new TypeError("watchApplied needs an options object");
    if (typeof opts.watcher?.watch !== "function") throw new TypeError("watcher must be a KvWatcher");
    if (typeof opts.parse !== "function") throw new TypeError("parse must be a function");
    if (typeof opts.apply !== "function") throw new TypeError("apply must be a function");
    if (opts.onApplied !== undefined && typeof opts.onApplied !== "function") {
      throw new TypeError("onApplied must be a function");
    }
    if (opts.resume !== undefined && !(opts.resume instanceof WatchCursor)) {
      throw new TypeError("resume must be a WatchCursor");
    }
    const scope = opts.scope;
    if (!scope || !["all", "prefix", "prefixes"].includes(scope.kind)) {
      throw new TypeError('scope must be { kind: "all" | "prefix" | "prefixes", … }');
    }
    this.#watcher = opts.watcher;
    this.#scope = scope;
    this.#reader = opts.reader;
    this.#store = opts.store;
    this.#parse = opts.parse;
    this.#apply = opts.apply;
    this.#onApplied = opts.onApplied;
    this.#log = opts.logger ?? silentLogger;
    this.#windowMs = nonNegative(opts.batch?.windowMs, 10, "batch.windowMs");
    this.#max = positiveInt(opts.batch?.max, 1000, "batch.max");
    this.#bufferSize = positiveInt(opts.batch?.buffer, 4096, "batch.buffer");
    this.#bufferBytes = positiveInt(opts.batch?.bufferBytes, 8 * 1024 * 1024, "batch.bufferBytes");
    const r = opts.retry ?? {};
    this.#retry = {
      resubscribeInitialMs: nonNegative(r.resubscribeInitialMs, 100, "retry.resubscribeInitialMs"),
      resubscribeMaxMs: nonNegative(r.resubscribeMaxMs, 5000, "retry.resubscribeMaxMs"),
      commitInitialMs: nonNegative(r.commitInitialMs, 50, "retry.commitInitialMs"),
      commitMaxMs: nonNegative(r.commitMaxMs, 2000, "retry.commitMaxMs"),
      maxCommitFailures: positiveInt(r.maxCommitFailures, 16, "retry.maxCommitFailures"),
    };
    this.#massDelete = resolveMassDeleteGuard(opts.massDelete);
    // A fold imported for a narrower scope lacks every key outside it: watching a wider
    // scope from its cursor would never deliver those keys (they were put before it).
    if (this.#store?.scope !== undefined) assertScopeCovers(this.#store.scope, foldScopeOf(scope), "the store's fold");
    this.#applied = opts.resume ?? this.#store?.cursor ?? WatchCursor.none();
    if (opts.resume && this.#store && cursorRank(opts.resume) > cursorRank(this.#store.cursor)) {
      // Harmless the other way round (re-delivery); this way the store misses the updates between.
      (opts.logger ?? silentLogger).warn(
        "resume cursor is ahead of the store's cursor; the store will miss what lies between",
        {
          cursor: opts.resume.toHex(),
          storeCursor: this.#store.cursor.toHex(),
        },
      );
    }
    this.#committed = this.#applied;
    this.#wakeP = new Promise((resolve) => {
      this.#wake = resolve;
    });
    this.#signal = opts.signal;
    if (this.#signal?.aborted) this.#stopping = true;
    else this.#signal?.addEventListener("abort", this.#onAbort, { once: true });

    this.done = this.#run();
    // The loop's failure is reported through `done` (and the logger); never as an
    // unhandled rejection when the caller only uses stop() or the signal.
    this.done.catch(() => {});
  }

  get cursor(): WatchCursor {
    return this.#committed;
  }

  get stats(): Readonly<AppliedWatchStats> {
    return { ...this.#stats };
  }

  async requestExport(destDir: string, opts?: ExportOptions): Promise<ExportManifest> {
    if (typeof destDir !== "string" || destDir === "") throw new TypeError("destDir must be a path");
    const store = this.#store;
    if (!store) throw new SlipstreamError("BACKEND", "watchApplied runs without a snapshot store; nothing to export");
    const stopped = () =>
      new SlipstreamError("BACKEND", "the applied watch has stopped; export from the store directly");
    if (this.#finished) throw stopped();
    const { quiesceMs, ...rest } = opts ?? {};
    const wait = nonNegative(quiesceMs, DEFAULT_EXPORT_QUIESCE_MS, "quiesceMs");
    // The watch keeps applying meanwhile; only the export itself pauses it.
    if (wait > 0 && store.quiesce) {
      await store.quiesce({ timeoutMs: wait, ...(rest.signal !== undefined ? { signal: rest.signal } : {}) });
      if (this.#finished) throw stopped();
    }
    return new Promise((resolve, reject) => {
      this.#exports.push({ destDir, opts: rest, resolve, reject });
      this.#wake();
    });
  }

  stop(): Promise<WatchCursor> {
    this.#requestStop();
    return this.done;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }

  #requestStop(): void {
    if (this.#stopping) return;
    this.#stopping = true;
    this.#stopCtl.abort(new SlipstreamError("ABORTED", "applied watch stopped"));
    this.#wake();
  }

  // ---------------------------------------------------------------------------------------
  // The loop

  async #run(): Promise<WatchCursor> {
    try {
      await Promise.resolve(); // let the constructor return before the first watch call
      let from = this.#applied;
      while (!this.#stopping) {
        if (this.#scope.kind === "prefixes" && this.#scope.prefixes.length === 0) {
          // An empty prefix list watches nothing (never widened to the whole bucket).
          await this.#idle(undefined);
          continue;
        }
        const outcome = await this.#consume(from);
        if (outcome.kind === "stop") break;
        // Flush (and commit) before anything else, so a re-subscribe starts right after what
        // was applied.
        await this.#flush();
        await this.#settle();
        // Expiry of a resume, or retention overrunning a live watch, is cured by a resync. A
        // state-sync that expires before delivering anything cannot be: treat that like any
        // other failure (re-subscribe with backoff) instead of looping hot.
        if (
          outcome.kind === "error" &&
          SlipstreamError.is(outcome.error, "CURSOR_EXPIRED") &&
          (!from.isNone || this.#subReceived > 0)
        ) {
          const completed = await this.#resync(outcome.error);
          if (!completed) break;
          // The synthetic deletes are committed: only now start the re-list (state-sync).
          from = WatchCursor.none();
          // The re-list defines the cursor afresh: its revisions may all lie below the old
          // cursor (a bucket deleted and recreated), and keeping the old one would let a later
          // resume skip everything between the re-list and it.
          this.#applied = WatchCursor.none();
          continue;
        }
        // Permanent refusals stop the watch; re-subscribing could only fail the same way forever.
        if (outcome.kind === "error" && isPermanent(outcome.error)) throw outcome.error;
        this.#stats.resubscribes++;
        const delay = jittered(
          this.#resubscribeAttempt++,
          this.#retry.resubscribeInitialMs,
          this.#retry.resubscribeMaxMs,
        );
        this.#log.warn(
          outcome.kind === "end" ? "watch ended unexpectedly; re-subscribing" : "watch failed; re-subscribing",
          {
            cursor: this.#applied.toHex(),
            attempt: this.#resubscribeAttempt,
            delayMs: delay,
            ...(outcome.kind === "error" ? { error: describeError(outcome.error) } : {}),
          },
        );
        await this.#idle(now() + delay);
        from = this.#applied;
      }
      await this.#flush();
      await this.#settle();
      await this.#serveExports();
      this.#log.info("applied watch stopped", { cursor: this.#committed.toHex() });
      return this.#committed;
    } catch (err) {
      // Nothing of ours runs after `done` settles: let a commit in flight end first.
      await this.#inflight?.catch(() => {});
      this.#log.error("applied watch failed", { cursor: this.#committed.toHex(), error: describeError(err) });
      for (const job of this.#exports.splice(0)) {
        job.reject(
          new SlipstreamError("BACKEND", `the applied watch failed before the export ran: ${describeError(err)}`, {
            cause: err,
          }),
        );
      }
      throw err;
    } finally {
      this.#finished = true;
      this.#stopping = true;
      this.#stopCtl.abort();
      clearTimeout(this.#timer);
      this.#signal?.removeEventListener("abort", this.#onAbort);
      for (const job of this.#exports.splice(0)) {
        job.reject(new SlipstreamError("BACKEND", "the applied watch stopped before the export ran"));
      }
    }
  }

  /** Waits for the next event (a post, a stop, or `until`). */
  async #waitEvent(until: number | undefined): Promise<void> {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    if (until !== undefined) this.#timer = setTimeout(() => this.#wake(), Math.max(0, until - now()));
    await this.#wakeP;
    this.#wakeP = new Promise((resolve) => {
      this.#wake = resolve;
    });
  }

  /** Serves exports until `until` (or forever when undefined) or a stop. */
  async #idle(until: number | undefined): Promise<void> {
    while (!this.#stopping && (until === undefined || now() < until)) {
      if (this.#exports.length > 0) {
        await this.#serveExports();
        continue;
      }
      await this.#waitEvent(until);
    }
  }

  #subscribe(from: WatchCursor): Subscription {
    const ctl = new AbortController();
    this.#subReceived = 0;
    const sub: Subscription = {
      ctl,
      iter: undefined,
      batches: [],
      head: 0,
      buffered: 0,
      bufferedBytes: 0,
      batchBytes: [],
      pushed: 0,
      taken: 0,
      relistedAt: undefined,
      terminal: undefined,
      pending: false,
      closed: false,
      room: undefined,
    };
    // A resync's re-list: learn where it ends, to finish the resync there (see #finishResync).
    if (!from.isNone) this.#relistCheck = undefined;
    const onRelisted = (): void => {
      sub.relistedAt = sub.pushed;
      this.#wake();
    };
    try {
      const opts: WatchOptions = from.isNone ? { signal: ctl.signal } : { from, signal: ctl.signal };
      if (from.isNone && this.#relistCheck) opts.onRelisted = onRelisted;
      sub.iter = batchesOf(this.#watcher, this.#scope, opts);
    } catch (error) {
      sub.terminal = { kind: "error", error };
      return sub;
    }
    this.#log.debug("watch subscribed", { cursor: from.toHex() });
    void this.#pump(sub, sub.iter);
    return sub;
  }

  /**
   * Reads the watch into the subscription's buffer, only while it has room (back-pressure:
   * a slow apply slows the watch; memory stays bounded by buffer + batch).
   */
  async #pump(sub: Subscription, iter: AsyncIterator<readonly KvUpdate[]>): Promise<void> {
    try {
      while (!sub.closed) {
        if (sub.buffered >= this.#bufferSize || sub.bufferedBytes >= this.#bufferBytes) {
          await new Promise<void>((resolve) => {
            sub.room = resolve;
          });
          sub.room = undefined;
          continue;
        }
        sub.pending = true;
        const r = await iter.next();
        sub.pending = false;
        if (sub.closed) break;
        if (r.done) {
          sub.terminal = { kind: "end" };
          return;
        }
        if (r.value.length > 0) {
          let bytes = 0;
          for (const u of r.value) if (u.type === "put") bytes += u.entry.value.length;
          sub.batches.push(r.value);
          sub.batchBytes.push(bytes);
          sub.buffered += r.value.length;
          sub.pushed += r.value.length;
          sub.bufferedBytes += bytes;
          this.#wake();
        }
      }
      // Closed by the loop: release the watch (server-side consumer) if it is still open.
      await iter.return?.();
    } catch (error) {
      sub.pending = false;
      if (!sub.closed) sub.terminal = { kind: "error", error };
    } finally {
      this.#wake();
    }
  }

  /**
   * Receives up to `limit` buffered updates from the first array of the read-ahead into the
   * open batch (stopping when it is full), then makes room for the pump.
   * @returns how many were taken (0 when nothing is buffered)
   */
  #takeRun(sub: Subscription, limit: number): number {
    const first = sub.batches[0];
    if (first === undefined) return 0;
    const from = sub.head;
    const n = Math.min(first.length - from, limit, this.#max - this.#received);
    this.#receiveRun(first, from, from + n);
    sub.head = from + n;
    sub.taken += n;
    if (sub.head >= first.length) {
      sub.batches.shift();
      sub.bufferedBytes -= sub.batchBytes.shift() ?? 0;
      sub.head = 0;
    }
    sub.buffered -= n;
    if (sub.buffered < this.#bufferSize && sub.bufferedBytes < this.#bufferBytes) sub.room?.();
    return n;
  }

  #close(sub: Subscription): void {
    if (sub.closed) return;
    sub.closed = true;
    sub.ctl.abort(new SlipstreamError("ABORTED", "applied watch re-subscribing or stopping"));
    sub.room?.();
    // A pump blocked in next() on a watcher that ignores its signal: ask the iterator to
    // finish too (not awaited; it releases the server-side consumer when it can).
    if (sub.pending && sub.terminal === undefined) sub.iter?.return?.().catch(() => {});
  }

  /** Reads one subscription until it ends, fails or the watch stops. Priority: stop, window, export, update. */
  async #consume(from: WatchCursor): Promise<Outcome> {
    const sub = this.#subscribe(from);
    try {
      for (;;) {
        if (this.#inflightFailure) throw this.#inflightFailure.error;
        if (this.#stopping) return { kind: "stop" };
        if (this.#deadline !== undefined && now() >= this.#deadline) {
          await this.#flush();
          continue;
        }
        if (this.#exports.length > 0) {
          await this.#flush();
          await this.#serveExports();
          continue;
        }
        // Take what is buffered in one synchronous run (bounded, so a stop, the window or
        // an export is seen within TAKE_RUN updates), flushing when the batch is full.
        // A resync's re-list is handled up to its end, then the resync is finished.
        const limit = sub.relistedAt === undefined ? TAKE_RUN : Math.min(TAKE_RUN, sub.relistedAt - sub.taken);
        let taken = 0;
        while (taken < limit && this.#received < this.#max) {
          const n = this.#takeRun(sub, limit - taken);
          if (n === 0) break;
          taken += n;
        }
        if (taken > 0) {
          this.#resubscribeAttempt = 0;
          this.#subReceived += taken;
          this.#stats.received += taken;
          if (this.#received >= this.#max) await this.#flush();
          continue;
        }
        if (sub.relistedAt !== undefined && sub.taken >= sub.relistedAt) {
          sub.relistedAt = undefined;
          await this.#finishResync();
          continue;
        }
        // The buffer is drained: only now does the end (or failure) of the watch count.
        if (sub.terminal) return sub.terminal;
        await this.#waitEvent(this.#deadline);
      }
    } finally {
      // Anything buffered but not yet received is dropped: it is re-delivered after the cursor.
      this.#close(sub);
    }
  }

  /**
   * Adds `updates[from, to)` to the open batch (the caller keeps it within {@link BatchOptions.max}):
   * the raw batch for the store, the parsed one for apply, the highest version for the cursor.
   */
  #receiveRun(updates: readonly KvUpdate[], from: number, to: number): void {
    if (from >= to) return;
    if (this.#received === 0) this.#deadline = now() + this.#windowMs;
    this.#received += to - from;
    const raw = this.#store ? this.#raw : undefined;
    const unconfirmed = this.#relistCheck?.unconfirmed;
    const parse = this.#parse;
    const batch = this.#batch;
    let high = this.#high;
    for (let i = from; i < to; i++) {
      const update = updates[i] as KvUpdate;
      raw?.push(update);
      // The re-list confirms the keys it delivers: what is left at its end vanished meanwhile.
      unconfirmed?.delete(updateKey(update));
      const version = updateVersion(update);
      // Unknown versions (synthetic deletes, unparseable ACKs) never move the cursor.
      if (!version.isUnknown && (high === undefined || VersionToken.compare(version, high) > 0)) high = version;
      // parse throwing is a fatal user error, like apply throwing; nothing of this batch is
      // committed (the flush that would commit it never runs).
      const parsed = parse(update);
      if (parsed !== undefined) batch.push(parsed);
    }
    this.#high = high;
  }

  /** Adds one update to the open batch; returns true when the batch is full (flush now). */
  #receive(update: KvUpdate): boolean {
    this.#receiveRun([update], 0, 1);
    return this.#received >= this.#max;
  }

  /**
   * One flush, strictly: apply(batch) → cursor := highest revision of the batch → store
   * commit of the raw batch with that cursor (one atomic store.apply) → onApplied(cursor).
   * The commit runs while the loop goes on with the next batch (the store works on its own
   * thread meanwhile); the next flush waits for it first, so commits stay in order, one at
   * a time, and `cursor`/onApplied move only once a commit has landed.
   */
  async #flush(): Promise<void> {
    if (this.#received === 0) return;
    const batch = this.#batch;
    const raw = this.#raw;
    const high = this.#high;
    this.#batch = [];
    this.#raw = [];
    this.#received = 0;
    this.#high = undefined;
    this.#deadline = undefined;

    if (batch.length > 0) await this.#apply(batch);

    // Cursor after apply: it moves only now that apply has returned, and never backwards.
    const previous = this.#applied;
    let next = previous;
    if (high !== undefined) {
      const candidate = WatchCursor.fromVersion(high);
      if (previous.isNone || cursorRank(candidate) > cursorRank(previous)) next = candidate;
    }
    this.#applied = next;
    const moved = !next.equals(previous);
    // One commit at a time, in order: the previous one (retries included) lands first.
    await this.#settle();
    if (this.#store && (raw.length > 0 || moved)) {
      // Data and cursor together: the raw batch (parse-rejected updates included) and the
      // post-apply cursor go into one atomic store.apply.
      const run = this.#commitThenReport(raw, next, moved);
      this.#inflight = run;
      run.catch((error: unknown) => {
        this.#inflightFailure ??= { error };
        this.#wake();
      });
    } else {
      this.#committed = next;
      this.#stats.flushes++;
      if (moved && this.#onApplied) await this.#onApplied(next);
    }
    // Let timers, stop() and export requests in even when the watch delivers without pause.
    await new Promise<void>((resolve) => setImmediate(resolve));
  }

  async #commitThenReport(raw: KvUpdate[], cursor: WatchCursor, moved: boolean): Promise<void> {
    await this.#commit(raw, cursor);
    this.#committed = cursor;
    this.#stats.flushes++;
    if (moved && this.#onApplied) await this.#onApplied(cursor);
  }

  /** Waits for the commit in flight (if any); its failure is fatal for the watch. */
  async #settle(): Promise<void> {
    const run = this.#inflight;
    if (run !== undefined) {
      try {
        await run;
      } finally {
        if (this.#inflight === run) this.#inflight = undefined;
      }
    }
    if (this.#inflightFailure) throw this.#inflightFailure.error;
  }

  /**
   * Commits with retries. A failed commit is never dropped: the same raw batch is committed
   * again (the next flush waits for it, so at most one later batch is applied meanwhile and
   * none is committed), so no restart can resume past a hole. A streak of failures stops the
   * watch.
   */
  async #commit(raw: KvUpdate[], cursor: WatchCursor): Promise<void> {
    const store = this.#store as SnapshotStore;
    for (let failures = 0; ; ) {
      try {
        await store.apply(raw, cursor);
        if (failures > 0)
          this.#log.info("snapshot store commit succeeded after retries", {
            cursor: cursor.toHex(),
            attempt: failures + 1,
          });
        return;
      } catch (err) {
        failures++;
        this.#stats.commitFailures++;
        if (failures >= this.#retry.maxCommitFailures) {
          throw SlipstreamError.wrap(
            err,
            "BACKEND",
            `snapshot store commit failed ${failures} times in a row (cursor ${cursor.toHex() || "none"})`,
          );
        }
        const delay = jittered(failures - 1, this.#retry.commitInitialMs, this.#retry.commitMaxMs);
        this.#log.warn("snapshot store commit failed; retrying", {
          cursor: cursor.toHex(),
          attempt: failures,
          delayMs: delay,
          error: describeError(err),
        });
        await sleep(delay);
      }
    }
  }

  async #serveExports(): Promise<void> {
    if (this.#exports.length === 0) return;
    // The export must see the store at exactly the applied cursor: the last commit lands first.
    await this.#settle();
    for (let job = this.#exports.shift(); job; job = this.#exports.shift()) {
      const store = this.#store as SnapshotStore;
      // Between two flushes: nothing is pending and no apply runs until exportTo returns,
      // so the artifact's cursor is exactly the applied cursor.
      try {
        job.resolve(await store.exportTo(job.destDir, job.opts));
      } catch (err) {
        this.#log.warn("export failed", { cursor: this.#committed.toHex(), error: describeError(err) });
        job.reject(err);
      }
    }
  }

  /**
   * The end of a resync's re-list: a key the resync listed live that the re-list did not
   * deliver vanished in between (evicted before the re-list reached it); the fold would keep
   * an old value of it forever, so it is deleted now (synthetic delete, cursor unchanged).
   * Watchers without `onRelisted` never get here (the window stays open, as before).
   */
  async #finishResync(): Promise<void> {
    const check = this.#relistCheck;
    this.#relistCheck = undefined;
    const store = this.#store;
    if (!check || !store) return;
    await this.#flush();
    await this.#settle();
    const gone: string[] = [];
    for (const key of check.unconfirmed) if ((await store.get(key)) !== undefined) gone.push(key);
    gone.sort(compareKeys);
    for (const key of gone) {
      if (this.#receive({ type: "delete", key, version: VersionToken.unknown() })) await this.#flush();
      this.#stats.syntheticDeletes++;
    }
    await this.#flush();
    if (gone.length > 0) {
      this.#log.info("resync: keys that vanished while the re-list started were deleted", {
        cursor: this.#applied.toHex(),
        count: gone.length,
      });
    }
  }

  /**
   * The mass-delete guard: refuses (MASS_DELETE_REFUSED, nothing deleted) a resync whose
   * deletes exceed the allowed share of the fold, unless the user's hook allows it.
   */
  async #guardMassDelete(keys: readonly string[], foldKeys: number, liveKeys: number): Promise<void> {
    const g = this.#massDelete;
    if (!g || !massDeleteTrips(g, keys.length, foldKeys)) return;
    const info: MassDeleteInfo = {
      source: "resync",
      deletes: keys.length,
      foldKeys,
      liveKeys,
      cursor: this.#applied,
      sample: keys.slice(0, 20),
    };
    const { allowed, hookError } = await askMassDelete(g, info);
    this.#log.warn(allowed ? "mass delete allowed by onMassDelete" : "mass delete refused", {
      cursor: this.#applied.toHex(),
      deletes: keys.length,
      foldKeys,
      liveKeys,
    });
    if (allowed) return;
    throw new SlipstreamError(
      "MASS_DELETE_REFUSED",
      `resync would delete ${keys.length} of the fold's ${foldKeys} keys in scope (the bucket lists ${liveKeys}), more than ${Math.round(g.maxShare * 100)}%: refused, the fold is unchanged. Was the bucket purged or recreated? To apply it anyway, allow it with massDelete.onMassDelete`,
      hookError === undefined ? undefined : { cause: hookError },
    );
  }

  /**
   * Resync after an expired cursor: list the live keys, flush, delete from the fold (through
   * parse/apply/store, cursor unchanged) every key of the scope that vanished, and only then
   * let the caller start the re-list. Returns false when a stop interrupted it.
   */
  async #resync(cause: unknown): Promise<boolean> {
    this.#stats.resyncs++;
    const reader = this.#reader;
    const store = this.#store;
    // Overlapping prefixes ("route." and "route.eu.") would count a key twice in the fold
    // and skew the mass-delete share: list each key under one prefix only.
    const prefixes = coveringPrefixes(scopePrefixes(this.#scope));
    this.#log.warn("watch cursor expired (retention evicted part of the log); resyncing", {
      cursor: this.#applied.toHex(),
      error: describeError(cause),
    });
    if (!reader || !store) {
      // Explicit, warned opt-out: without both we cannot know what vanished during the gap.
      let candidates: string[] | undefined;
      if (store) {
        candidates = [];
        try {
          for (const p of prefixes) {
            for await (const e of store.range(p)) {
              if (candidates.length >= 1000) break;
              candidates.push(e.key);
            }
          }
        } catch (err) {
          this.#log.warn("could not list the fold's keys for the stale-key report", { error: describeError(err) });
        }
      }
      this.#log.warn(
        "cursor expired without a reader and a store: re-listing without deleting vanished keys; keys deleted during the gap may be stale",
        { cursor: this.#applied.toHex(), prefixes, ...(candidates ? { keys: candidates } : {}) },
      );
      return true;
    }

    const live = new Set<string>();
    try {
      for (const p of prefixes) {
        for await (const key of reader.keys(p === "" ? undefined : p, { signal: this.#stopCtl.signal })) live.add(key);
      }
    } catch (err) {
      if (this.#stopping) return false;
      throw new SlipstreamError("WATCH_FAILED", `resync failed while listing live keys: ${describeError(err)}`, {
        cause: err,
      });
    }
    if (this.#stopping) return false;
    await this.#flush();
    await this.#settle();

    const vanished = new Set<string>();
    let foldKeys = 0;
    try {
      for (const p of prefixes) {
        for await (const e of store.range(p)) {
          foldKeys++;
          if (!live.has(e.key)) vanished.add(e.key);
        }
      }
    } catch (err) {
      throw new SlipstreamError("WATCH_FAILED", `resync failed while scanning the fold: ${describeError(err)}`, {
        cause: err,
      });
    }
    const keys = [...vanished].sort(compareKeys);
    await this.#guardMassDelete(keys, foldKeys, live.size);
    for (const key of keys) {
      // Synthetic deletes carry an unknown version: they never move the cursor, so a crash
      // mid-resync re-runs the same idempotent diff.
      if (this.#receive({ type: "delete", key, version: VersionToken.unknown() })) await this.#flush();
      this.#stats.syntheticDeletes++;
    }
    // The synthetic deletes must be committed before the re-list starts.
    await this.#flush();
    await this.#settle();
    // Keys listed live may still vanish before the re-list reaches them (retention goes on):
    // the re-list will tell which ones it delivered (#finishResync).
    this.#relistCheck = { unconfirmed: live };
    this.#log.info("resync deleted the keys that vanished during the gap", {
      cursor: this.#applied.toHex(),
      count: keys.length,
    });
    return !this.#stopping;
  }
}

/**
 * Watches `scope`, batches updates, applies them and commits each batch with its cursor.
 * Cursor after apply: a cursor it reports or persists means `apply` has returned for every
 * update at or below it. It re-subscribes by itself after connection loss or a watch that
 * ends, resyncs after `CURSOR_EXPIRED`, and ends only on `stop()`, `signal` or a fatal error.
 *
 * @example
 * ```ts
 * const watch = watchApplied({ watcher, reader, store, scope: { kind: "prefix", prefix: "route." },
 *   parse: (u) => u, apply: (batch) => routes.apply(batch) });
 * // …
 * const cursor = await watch.stop();
 * ```
 */
export function watchApplied<U>(opts: WatchAppliedOptions<U>): AppliedWatch {
  return new AppliedLoop(opts);
}
