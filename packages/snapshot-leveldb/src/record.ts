/**
 * The value record of one fold entry: `[ver_len u8][version bytes][value bytes]`, the same
 * layout the Rust LSM backends use. The version is length-prefixed so that tokens of any
 * length up to 10 bytes survive byte-exactly (never flattened to a fixed u64).
 */
import { SlipstreamError, VERSION_TOKEN_CAPACITY, VersionToken } from "@slipstream/core";

/** Bytes of the value record of `version` and `value`. */
export function valueRecordLength(version: VersionToken, value: Uint8Array): number {
  return 1 + version.length + value.length;
}

/** Writes the value record at `offset` of `target` (room checked by the caller); returns its length. */
export function writeValueRecord(target: Uint8Array, offset: number, version: VersionToken, value: Uint8Array): number {
  const verLen = version.length;
  target[offset] = verLen;
  version.writeTo(target, offset + 1);
  target.set(value, offset + 1 + verLen);
  return 1 + verLen + value.length;
}

/** Encodes a value record. */
export function encodeValueRecord(version: VersionToken, value: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(valueRecordLength(version, value));
  writeValueRecord(out, 0, version, value);
  return out;
}

/** A decoded value record. */
export interface ValueRecord {
  readonly version: VersionToken;
  readonly value: Uint8Array;
}

/**
 * Decodes a value record. An empty record, a record shorter than its version length, or a
 * version length above 10 → `SNAPSHOT_INVALID_FORMAT` (never a truncated token).
 */
export function decodeValueRecord(record: Uint8Array, key?: string): ValueRecord {
  const where = key === undefined ? "" : ` of key ${JSON.stringify(key)}`;
  if (record.length === 0) {
    throw new SlipstreamError(
      "SNAPSHOT_INVALID_FORMAT",
      `value record${where} is empty; expected at least the version length byte`,
    );
  }
  const verLen = record[0] as number;
  if (verLen > VERSION_TOKEN_CAPACITY) {
    throw new SlipstreamError(
      "SNAPSHOT_INVALID_FORMAT",
      `value record${where} declares a ${verLen}-byte version; at most ${VERSION_TOKEN_CAPACITY} bytes are allowed`,
    );
  }
  if (record.length < 1 + verLen) {
    throw new SlipstreamError(
      "SNAPSHOT_INVALID_FORMAT",
      `value record${where} is ${record.length} bytes; its ${verLen}-byte version needs at least ${1 + verLen}`,
    );
  }
  const version = VersionToken.fromBytes(record.subarray(1, 1 + verLen));
  // Copy into a plain Uint8Array: callers own the bytes, and no Buffer subclass leaks out.
  const value = new Uint8Array(record.subarray(1 + verLen));
  return { version, value };
}
