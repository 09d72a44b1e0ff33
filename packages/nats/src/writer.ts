/**
 * The KvWriter of a NATS bucket: plain JetStream publishes on `$KV.<bucket>.<key>`, with
 * `Nats-Expected-Last-Subject-Sequence` for compare-and-swap and `KV-Operation` markers for
 * delete and purge.
 */

import type { MsgHdrs } from "@nats-io/nats-core";
import { Empty, headers as natsHeaders } from "@nats-io/nats-core";
import { invalidArgument, type KvWriter, type OpOptions, SlipstreamError, VersionToken } from "@slipstream/core";
import { type BucketContext, timed } from "./context.js";
import { KV_OPERATION } from "./decode.js";
import { isWrongLastSequence } from "./errors.js";
import { validateKey } from "./keys.js";
import { lastMessage } from "./reader.js";

const EXPECTED_LAST_SUBJECT_SEQ = "Nats-Expected-Last-Subject-Sequence";
const ROLLUP = "Nats-Rollup";

/** The revision of a version token; tokens that are not 8 bytes long cannot name one. */
export function revisionOf(version: unknown, what: string): bigint {
  if (
    !(version instanceof VersionToken) &&
    !(typeof version === "object" && version !== null && "revision" in version)
  ) {
    throw new TypeError(`${what}: version must be a VersionToken`);
  }
  const rev = (version as VersionToken).revision;
  if (rev === undefined) {
    throw invalidArgument(`${what}: version ${String(version)} is not a NATS revision (an 8-byte token is required)`);
  }
  return rev;
}

function checkValue(value: unknown, what: string): asserts value is Uint8Array {
  if (!(value instanceof Uint8Array)) throw new TypeError(`${what}: value must be a Uint8Array`);
}

export class NatsKvWriter implements KvWriter {
  readonly #ctx: BucketContext;

  /** @internal vended by `NatsConnection.store`. */
  constructor(ctx: BucketContext) {
    this.#ctx = ctx;
  }

  async #publish(
    what: string,
    key: string,
    value: Uint8Array,
    hdrs: MsgHdrs | undefined,
    opts: OpOptions | undefined,
  ): Promise<VersionToken> {
    const ctx = this.#ctx;
    const ack = await timed(ctx, what, opts?.signal, () =>
      ctx.js.publish(`${ctx.subjectPrefix}${key}`, value, { headers: hdrs, timeout: ctx.timeoutMs }),
    );
    return VersionToken.fromRevision(BigInt(ack.seq));
  }

  #casHeaders(expected: bigint): MsgHdrs {
    const h = natsHeaders();
    h.set(EXPECTED_LAST_SUBJECT_SEQ, expected.toString());
    return h;
  }

  async put(key: string, value: Uint8Array, opts?: OpOptions): Promise<VersionToken> {
    validateKey(key);
    checkValue(value, "put");
    return this.#publish(`put ${key}`, key, value, undefined, opts);
  }

  async create(key: string, value: Uint8Array, opts?: OpOptions): Promise<VersionToken> {
    validateKey(key);
    checkValue(value, "create");
    const what = `create ${key}`;
    try {
      return await this.#publish(what, key, value, this.#casHeaders(0n), opts);
    } catch (err) {
      if (!isWrongLastSequence(errCause(err))) throw err;
    }
    // Absent is not the only "free" state: a key whose last message is a delete or purge
    // marker may be created again (CAS on the marker's revision, so a racing writer loses).
    const last = await lastMessage(this.#ctx, key, opts?.signal);
    if (last === undefined || last.operation === "PUT") {
      throw new SlipstreamError("ALREADY_EXISTS", `${what}: key ${key} already exists`);
    }
    try {
      return await this.#publish(what, key, value, this.#casHeaders(last.revision), opts);
    } catch (err) {
      if (isWrongLastSequence(errCause(err))) {
        throw new SlipstreamError("ALREADY_EXISTS", `${what}: key ${key} was written concurrently`, { cause: err });
      }
      throw err;
    }
  }

  async update(key: string, value: Uint8Array, version: VersionToken, opts?: OpOptions): Promise<VersionToken> {
    validateKey(key);
    checkValue(value, "update");
    return this.#cas(`update ${key}`, key, value, revisionOf(version, `update ${key}`), opts);
  }

  async #cas(what: string, key: string, value: Uint8Array, expected: bigint, opts?: OpOptions): Promise<VersionToken> {
    // No entry has revision 0; sending 0 would mean "only if absent", i.e. a create.
    if (expected === 0n) {
      throw new SlipstreamError("REVISION_MISMATCH", `${what}: expected revision 0 names no entry`);
    }
    try {
      return await this.#publish(what, key, value, this.#casHeaders(expected), opts);
    } catch (err) {
      if (isWrongLastSequence(errCause(err))) {
        throw new SlipstreamError("REVISION_MISMATCH", `${what}: the key is not at revision ${expected}`, {
          cause: err,
        });
      }
      throw err;
    }
  }

  async delete(key: string, opts?: OpOptions): Promise<void> {
    validateKey(key);
    const h = natsHeaders();
    h.set(KV_OPERATION, "DEL");
    await this.#publish(`delete ${key}`, key, Empty, h, opts);
  }

  async deleteWithVersion(key: string, version: VersionToken, opts?: OpOptions): Promise<VersionToken> {
    validateKey(key);
    const what = `deleteWithVersion ${key}`;
    // A CAS write of an empty value: a tombstone put that `get` hides and `entry` shows.
    return this.#cas(what, key, Empty, revisionOf(version, what), opts);
  }

  async purge(key: string, opts?: OpOptions): Promise<void> {
    validateKey(key);
    const h = natsHeaders();
    h.set(KV_OPERATION, "PURGE");
    h.set(ROLLUP, "sub");
    await this.#publish(`purge ${key}`, key, Empty, h, opts);
  }
}

/** The nats.js error behind a mapped SlipstreamError (or the error itself). */
function errCause(err: unknown): unknown {
  return SlipstreamError.is(err) && err.cause !== undefined ? err.cause : err;
}
