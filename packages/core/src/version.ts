import { invalidArgument } from "./errors.js";
import { parseHex, toHex } from "./hex.js";

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
  readonly #bytes: Uint8Array;

  private constructor(bytes: Uint8Array) {
    this.#bytes = bytes;
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
    return new VersionToken(bytes);
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
    if (this.#bytes.length !== 8) return undefined;
    return new DataView(this.#bytes.buffer, this.#bytes.byteOffset, 8).getBigUint64(0, false);
  }

  /** A copy of the raw bytes. */
  get bytes(): Uint8Array {
    return Uint8Array.from(this.#bytes);
  }

  /** True for the empty token. */
  get isUnknown(): boolean {
    return this.#bytes.length === 0;
  }

  /** Byte-wise equality. */
  equals(other: VersionToken): boolean {
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
