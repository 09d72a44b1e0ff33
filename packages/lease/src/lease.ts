import {
  invalidArgument,
  type KvReader,
  type KvWriter,
  type Logger,
  SlipstreamError,
  silentLogger,
  type VersionToken,
  type WatchCursor,
} from "@slipstream/core";
import { decodeLeaseRecord, encodeLeaseRecord, type LeaseRecord } from "./record.js";

/** Options of {@link ExportLease}. */
export interface ExportLeaseOptions {
  /** Reads the lease key; must implement `entry` (raw, tombstones included). */
  reader: KvReader;
  /** Writes the lease key; needs create/update/deleteWithVersion (CAS). */
  writer: KvWriter;
  /** The single KV key the fleet competes for, e.g. `export.edge.us-east`. */
  key: string;
  /** This node's identity, recorded in the lease. */
  holderId: string;
  /**
   * Wall clock in ms. Expiry is judged by each node's clock; skew can cause a premature
   * takeover (a duplicate round), which is harmless: the published pointer only moves forward.
   * @defaultValue Date.now
   */
  clock?: () => number;
  /** @defaultValue silent */
  logger?: Logger;
}

/**
 * A lease that lets exactly one node of a fleet run an export round per period. The winner
 * holds it until `ttlMs` passes; completing or crashing does not release it early (the ttl is
 * the round period), abandoning does.
 *
 * @example
 * ```ts
 * const lease = new ExportLease({ reader, writer, key: "export.routes", holderId: "node-a" });
 * const guard = await lease.tryAcquire(60_000);
 * if (guard) { const cursor = await exportSomewhere(); await guard.complete(cursor); }
 * ```
 */
export class ExportLease {
  readonly #reader: KvReader;
  readonly #writer: KvWriter;
  readonly #clock: () => number;
  readonly #logger: Logger;
  /** The lease key. */
  readonly key: string;
  /** This node's identity. */
  readonly holderId: string;

  constructor(opts: ExportLeaseOptions) {
    if (!opts || typeof opts !== "object") throw new TypeError("ExportLease needs an options object");
    if (!opts.reader || !opts.writer) throw new TypeError("ExportLease needs a reader and a writer");
    if (typeof opts.key !== "string" || opts.key.length === 0)
      throw invalidArgument("lease key must be a non-empty string");
    if (typeof opts.holderId !== "string" || opts.holderId.length === 0) {
      throw invalidArgument("holderId must be a non-empty string");
    }
    this.#reader = opts.reader;
    this.#writer = opts.writer;
    this.#clock = opts.clock ?? Date.now;
    this.#logger = opts.logger ?? silentLogger;
    this.key = opts.key;
    this.holderId = opts.holderId;
  }

  /**
   * Tries to win the lease for `ttlMs`. Exactly one candidate wins a race: a create-only
   * write wins an absent key; an expired, tombstoned or unparseable lease is taken over with
   * a compare-and-swap against the version that was read. Losing returns `undefined`.
   */
  async tryAcquire(ttlMs: number, opts: { signal?: AbortSignal } = {}): Promise<LeaseGuard | undefined> {
    if (!Number.isFinite(ttlMs) || ttlMs <= 0) throw invalidArgument(`ttlMs must be a positive number, got ${ttlMs}`);
    const now = this.#clock();
    const record: LeaseRecord = { holder: this.holderId, acquiredAt: now, expiresAt: now + ttlMs };
    const value = encodeLeaseRecord(record);
    try {
      const version = await this.#writer.create(this.key, value, opts);
      this.#logger.info("export lease acquired", { key: this.key, holder: this.holderId });
      return new LeaseGuard(this.#writer, this.key, record, version, this.#logger);
    } catch (err) {
      if (!SlipstreamError.is(err, "ALREADY_EXISTS")) throw err;
    }
    const seen = await this.#reader.entry(this.key, opts);
    if (seen === undefined) return undefined; // deleted meanwhile: another candidate's turn
    const existing = decodeLeaseRecord(seen.value);
    if (existing !== undefined && existing.expiresAt > now) {
      this.#logger.debug("export lease held", { key: this.key, holder: existing.holder });
      return undefined;
    }
    try {
      const version = await this.#writer.update(this.key, value, seen.version, opts);
      this.#logger.info("export lease taken over", {
        key: this.key,
        holder: this.holderId,
        previous: existing?.holder ?? "(tombstone or unparseable)",
      });
      return new LeaseGuard(this.#writer, this.key, record, version, this.#logger);
    } catch (err) {
      if (SlipstreamError.is(err, "REVISION_MISMATCH") || SlipstreamError.is(err, "ALREADY_EXISTS")) return undefined;
      throw err;
    }
  }

  /**
   * The current lease record, or undefined when there is none (absent, deleted, tombstoned).
   * A value that is not a lease record → `BACKEND` naming the key.
   */
  async current(opts: { signal?: AbortSignal } = {}): Promise<LeaseRecord | undefined> {
    const entry = await this.#reader.get(this.key, opts);
    if (entry === undefined) return undefined;
    const record = decodeLeaseRecord(entry.value);
    if (record === undefined) {
      throw new SlipstreamError(
        "BACKEND",
        `lease key ${this.key} holds an unparseable value (${entry.value.length} bytes)`,
      );
    }
    return record;
  }
}

/** Proof of holding the lease. Completing or abandoning ends it; dropping it releases nothing. */
export class LeaseGuard {
  readonly #writer: KvWriter;
  readonly #logger: Logger;
  #version: VersionToken;
  #record: LeaseRecord;
  #state: "held" | "completed" | "abandoned" = "held";
  /** The lease key. */
  readonly key: string;

  /** @internal made by {@link ExportLease.tryAcquire}. */
  constructor(writer: KvWriter, key: string, record: LeaseRecord, version: VersionToken, logger: Logger) {
    this.#writer = writer;
    this.key = key;
    this.#record = record;
    this.#version = version;
    this.#logger = logger;
  }

  /** The record this guard wrote. */
  get record(): LeaseRecord {
    return this.#record;
  }

  /** The version of the lease key this guard last wrote. */
  get version(): VersionToken {
    return this.#version;
  }

  /**
   * Records the exported cursor and the time (expiry unchanged) with a CAS against this
   * guard's version. Losing the CAS (someone took over) is logged and returns false.
   */
  async complete(cursor: WatchCursor, opts: { signal?: AbortSignal } = {}): Promise<boolean> {
    const record: LeaseRecord = { ...this.#record, completedCursor: cursor, completedAt: Date.now() };
    try {
      this.#version = await this.#writer.update(this.key, encodeLeaseRecord(record), this.#version, opts);
      this.#record = record;
      this.#state = "completed";
      return true;
    } catch (err) {
      if (SlipstreamError.is(err, "REVISION_MISMATCH")) {
        this.#logger.warn("export lease was taken over before completion was recorded", {
          key: this.key,
          cursor: cursor.toHex(),
        });
        this.#state = "completed";
        return false;
      }
      throw err;
    }
  }

  /**
   * Writes a version-checked tombstone so the next candidate can take over at once.
   * Best effort: failures are logged, never thrown. Returns whether the tombstone was written.
   */
  async abandon(opts: { signal?: AbortSignal } = {}): Promise<boolean> {
    this.#state = "abandoned";
    try {
      this.#version = await this.#writer.deleteWithVersion(this.key, this.#version, opts);
      this.#logger.info("export lease abandoned", { key: this.key });
      return true;
    } catch (err) {
      this.#logger.warn("could not abandon export lease", { key: this.key, error: String(err) });
      return false;
    }
  }

  /** Dropping a guard releases nothing (the ttl is the round period); warns if it was neither completed nor abandoned. */
  async [Symbol.asyncDispose](): Promise<void> {
    if (this.#state === "held") {
      this.#logger.warn("export lease guard dropped without complete() or abandon(); it holds until expiry", {
        key: this.key,
      });
    }
  }
}
