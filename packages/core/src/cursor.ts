import { invalidArgument } from "./errors.js";
import { VersionToken } from "./version.js";

/**
 * The revision up to which everything has been applied. `none()` means "start fresh"
 * (state-sync). Equality is by the raw bytes of the wrapped {@link VersionToken}.
 */
export class WatchCursor {
  static readonly #NONE = new WatchCursor(VersionToken.unknown());
  /** The version this cursor wraps (unknown for `none()`). */
  readonly version: VersionToken;

  private constructor(version: VersionToken) {
    this.version = version;
  }

  /** The empty cursor: nothing applied yet. */
  static none(): WatchCursor {
    return WatchCursor.#NONE;
  }

  /** A cursor at a NATS revision. Revision 0 is a real cursor, though watches treat it as none. */
  static fromRevision(revision: bigint): WatchCursor {
    return new WatchCursor(VersionToken.fromRevision(revision));
  }

  /** A cursor wrapping any version token. */
  static fromVersion(version: VersionToken): WatchCursor {
    if (!(version instanceof VersionToken)) throw new TypeError("version must be a VersionToken");
    return version.isUnknown ? WatchCursor.#NONE : new WatchCursor(version);
  }

  /** Parses the hex of the raw bytes ("" = none), as made by {@link WatchCursor.toHex}. */
  static fromHex(hex: string): WatchCursor {
    if (typeof hex !== "string") throw new TypeError("hex must be a string");
    try {
      return WatchCursor.fromVersion(VersionToken.fromHex(hex));
    } catch (err) {
      throw invalidArgument(`cursor hex ${JSON.stringify(hex.slice(0, 40))}: ${(err as Error).message}`, err);
    }
  }

  /** The revision, when the cursor wraps an 8-byte token. */
  get revision(): bigint | undefined {
    return this.version.revision;
  }

  /** True for `none()`. */
  get isNone(): boolean {
    return this.version.isUnknown;
  }

  /** Byte-wise equality. */
  equals(other: WatchCursor): boolean {
    return this.version.equals(other.version);
  }

  /** Lowercase hex of the raw bytes; "" for none. Revision 42 → "000000000000002a". */
  toHex(): string {
    return this.version.toHex();
  }

  toString(): string {
    if (this.isNone) return "WatchCursor(none)";
    const rev = this.revision;
    return rev === undefined ? `WatchCursor(${this.toHex()})` : `WatchCursor(${rev})`;
  }

  toJSON(): string {
    return this.toHex();
  }
}
