import { invalidArgument } from "./errors.js";
import { parseHex, toHex } from "./hex.js";

/** Writes a safe integer ≥ 0 as 8 big-endian bytes at `offset`. */
function writeSequence(sequence: number, target: Uint8Array, offset: number): void {
  const hi = Math.floor(sequence / 0x1_0000_0000);
  const lo = sequence >>> 0;
  target[offset] = 0;
  target[offset + 1] = hi >>> 16;
  target[offset + 2] = hi >>> 8;
  target[offset + 3] = hi;
  target[offset + 4] = lo >>> 24;
  target[offset + 5] = lo >>> 16;
  target[offset + 6] = lo >>> 8;
  target[offset + 7] = lo;
}

/** The most bytes a {@link VersionToken} may hold. */
export const VERSION_TOKEN_CAPACITY = 10;

/** The largest revision NATS can name (u64). */
export const MAX_REVISION = (1n << 64n) - 1n;

/**
 * An opaque per-key version of up to 10 bytes. NATS revisions are encoded as 8 bytes,
 * big-endian. A token is never truncated: longer input is refused. Revision 0 is a valid
 * token and is not "unknown" (the empty token).
 */
export class VersionToken {
  static readonly #UNKNOWN = new VersionToken(new Uint8Array(0));
  /** The raw bytes; made on first use for a token built from a sequence number. */
  #bytesOrUndefined: Uint8Array | undefined;
  /** The sequence number of a token built by {@link VersionToken.fromSequence}. */
  readonly #seq: number | undefined;
  /** The decoded revision, once asked for (undefined: not yet; null: not an 8-byte token). */
  #revision: bigint | null | undefined;

  private constructor(bytes: Uint8Array | undefined, revision?: bigint, seq?: number) {
    this.#bytesOrUndefined = bytes;
    this.#revision = revision;
    this.#seq = seq;
  }

  /** The raw bytes (a token from a sequence makes them once, on first use). */
  get #bytes(): Uint8Array {
    let bytes = this.#bytesOrUndefined;
    if (bytes === undefined) {
      bytes = new Uint8Array(8);
      writeSequence(this.#seq as number, bytes, 0);
      this.#bytesOrUndefined = bytes;
    }
    return bytes;
  }

  /** The empty token: a version nobody knows (e.g. a synthetic delete during resync). */
  static unknown(): VersionToken {
    return VersionToken.#UNKNOWN;
  }

  /** The 8-byte big-endian token of a NATS revision (0 ≤ revision < 2^64). */
  static fromRevision(revision: bigint): VersionToken {
    if (typeof revision !== "bigint") throw new TypeError("revision must be a bigint");
    if (revision < 0n || revision > MAX_REVISION) {
      throw invalidArgument(`revision ${revision} is outside 0..2^64-1`);
    }
    const bytes = new Uint8Array(8);
    new DataView(bytes.buffer).setBigUint64(0, revision, false);
    return new VersionToken(bytes, revision);
  }

  /**
   * The token of a stream sequence that is a JS number (a safe integer ≥ 0), as NATS clients
   * hand them over: the same 8-byte big-endian token as {@link VersionToken.fromRevision},
   * without a bigint on the way (a watch makes one token per message).
   */
  static fromSequence(sequence: number): VersionToken {
    if (!Number.isSafeInteger(sequence) || sequence < 0) {
      throw invalidArgument(`sequence ${sequence} is not a safe integer ≥ 0`);
    }
    // The bytes are made only if asked for: a watch makes one token per message, and most
    // are only compared and written into a store record.
    return new VersionToken(undefined, undefined, sequence);
  }

  /** A token holding exactly `bytes` (copied). More than 10 bytes → `INVALID_ARGUMENT`. */
  static fromBytes(bytes: Uint8Array): VersionToken {
    if (!(bytes instanceof Uint8Array)) throw new TypeError("bytes must be a Uint8Array");
    if (bytes.length > VERSION_TOKEN_CAPACITY) {
      throw invalidArgument(`version token holds at most ${VERSION_TOKEN_CAPACITY} bytes, got ${bytes.length}`);
    }
    return bytes.length === 0 ? VersionToken.#UNKNOWN : new VersionToken(Uint8Array.from(bytes));
  }

  /** Parses lowercase or uppercase hex (as made by {@link VersionToken.toHex}). */
  static fromHex(hex: string): VersionToken {
    const bytes = parseHex(hex);
    if (typeof bytes === "string") throw invalidArgument(`version token hex: ${bytes}`);
    return VersionToken.fromBytes(bytes);
  }

  /** The revision when the token is 8 bytes long, else `undefined`. */
  get revision(): bigint | undefined {
    if (this.#revision === undefined && this.#seq !== undefined) this.#revision = BigInt(this.#seq);
    if (this.#revision === undefined) {
      this.#revision =
        this.#bytes.length === 8
          ? new DataView(this.#bytes.buffer, this.#bytes.byteOffset, 8).getBigUint64(0, false)
          : null;
    }
    return this.#revision ?? undefined;
  }

  /** A copy of the raw bytes. */
  get bytes(): Uint8Array {
    return Uint8Array.from(this.#bytes);
  }

  /** The number of raw bytes (0 for unknown). */
  get length(): number {
    return this.#seq !== undefined ? 8 : this.#bytes.length;
  }

  /**
   * Copies the raw bytes into `target` at `offset` (no intermediate copy, for encoders).
   * @returns the number of bytes written
   */
  writeTo(target: Uint8Array, offset = 0): number {
    if (this.#seq !== undefined && this.#bytesOrUndefined === undefined) {
      writeSequence(this.#seq, target, offset);
      return 8;
    }
    const bytes = this.#bytes;
    // A loop beats TypedArray#set for the ≤ 10 bytes a token holds.
    for (let i = 0; i < bytes.length; i++) target[offset + i] = bytes[i] as number;
    return bytes.length;
  }

  /** True for the empty token. */
  get isUnknown(): boolean {
    return this.#seq === undefined && this.#bytes.length === 0;
  }

  /**
   * Orders two tokens by their big-endian integer value (the order of `cursorRank`: for
   * NATS tokens, revision order), without allocating. Unknown ranks as 0.
   * @returns negative, zero or positive, as for `Array.prototype.sort`
   */
  static compare(a: VersionToken, b: VersionToken): number {
    if (a.#seq !== undefined && b.#seq !== undefined) return a.#seq - b.#seq;
    const x = a.#bytes;
    const y = b.#bytes;
    let i = 0;
    let j = 0;
    while (i < x.length && x[i] === 0) i++;
    while (j < y.length && y[j] === 0) j++;
    const lx = x.length - i;
    const ly = y.length - j;
    if (lx !== ly) return lx - ly;
    for (; i < x.length; i++, j++) {
      const d = (x[i] as number) - (y[j] as number);
      if (d !== 0) return d;
    }
    return 0;
  }

  /** Byte-wise equality. */
  equals(other: VersionToken): boolean {
    if (this.#seq !== undefined && other.#seq !== undefined) return this.#seq === other.#seq;
    return Buffer.compare(this.#bytes, other.#bytes) === 0;
  }

  /** Lowercase hex of the raw bytes ("" for unknown). */
  toHex(): string {
    return toHex(this.#bytes);
  }

  toString(): string {
    const rev = this.revision;
    return rev === undefined ? `VersionToken(${this.toHex() || "unknown"})` : `VersionToken(${rev})`;
  }

  toJSON(): string {
    return this.toHex();
  }
}
