/**
 * On-disk layout of a LevelDB fold, format generation 1 (artifact `backendVersion` "1").
 *
 * One LevelDB database, two sublevels (abstract-level sublevels, i.e. key prefixes):
 *
 * | sublevel | key | value |
 * | --- | --- | --- |
 * | `data` (`!data!`) | the KV key, UTF-8 bytes | value record `[ver_len u8][version][value]` |
 * | `meta` (`!meta!`) | `format` | ASCII decimal generation, `"1"` |
 * | `meta` | `cursor` | raw cursor bytes, 0..10 (empty = none) |
 * | `meta` | `count` | number of `data` entries, u64 big-endian (8 bytes) |
 * | `meta` | `scope` (optional) | the key prefixes a partial fold holds: per prefix `[u32 BE length][UTF-8]`; absent = the whole bucket |
 *
 * Every apply writes its puts, deletes, `cursor` and `count` in one LevelDB batch, so data,
 * cursor and count never disagree after a crash. A directory without the `format` record is
 * not a slipstream fold and is refused.
 */
import {
  type FoldScope,
  normalizeScope,
  SlipstreamError,
  VERSION_TOKEN_CAPACITY,
  VersionToken,
  WatchCursor,
} from "@slipstream/core";

/** Backend id written into artifact manifests. */
export const BACKEND_ID = "leveldb";
/** The format generation this version writes and reads. */
export const FORMAT_GENERATION = 1;
/** Artifact `backendVersion`: the format generation as a string. */
export const BACKEND_VERSION = String(FORMAT_GENERATION);
/** Generations this version can read. */
export const READABLE_GENERATIONS: readonly string[] = [BACKEND_VERSION];

// Keys are laid out exactly like abstract-level sublevels named "data" and "meta" (the
// prefixes `!data!` and `!meta!`), but prefixed here directly: one root-level batch per
// apply without the per-operation sublevel machinery (about twice the write throughput).
/** Prefix of every data key (the `data` sublevel). */
export const DATA_PREFIX: Buffer = Buffer.from("!data!", "ascii");
/** The first key after the data sublevel. */
export const DATA_END: Buffer = Buffer.from('!data"', "ascii");
/** Prefix of every meta key (the `meta` sublevel). */
export const META_PREFIX: Buffer = Buffer.from("!meta!", "ascii");
export const META_FORMAT = "format";
export const META_CURSOR = "cursor";
export const META_COUNT = "count";
export const META_SCOPE = "scope";

/** Bytes of the root data key of `key`. */
export function dataKeyLength(key: string): number {
  return DATA_PREFIX.length + Buffer.byteLength(key, "utf8");
}

/** Writes the root data key of `key` at the start of `target`; returns its length. */
export function writeDataKey(target: Buffer, key: string): number {
  DATA_PREFIX.copy(target, 0);
  return DATA_PREFIX.length + target.write(key, DATA_PREFIX.length, "utf8");
}

/** The root key of the data entry of `key` (UTF-8). */
export function dataKey(key: string): Buffer {
  const out = Buffer.allocUnsafe(dataKeyLength(key));
  writeDataKey(out, key);
  return out;
}

/** The root key of a meta record. */
export function metaKey(name: string): Buffer {
  return Buffer.concat([META_PREFIX, Buffer.from(name, "ascii")]);
}

/** The encoded `format` record of this generation. */
export function encodeFormat(): Buffer {
  return Buffer.from(BACKEND_VERSION, "ascii");
}

function invalid(message: string): SlipstreamError {
  return new SlipstreamError("SNAPSHOT_INVALID_FORMAT", message);
}

/** Checks a `format` record; throws `SNAPSHOT_INVALID_FORMAT` for a generation this version does not read. */
export function checkFormat(record: Uint8Array, where: string): void {
  const text = Buffer.from(record).toString("latin1");
  if (!READABLE_GENERATIONS.includes(text)) {
    const shown = /^[\x20-\x7e]{1,32}$/.test(text)
      ? JSON.stringify(text)
      : `0x${Buffer.from(record).toString("hex").slice(0, 64)}`;
    throw invalid(
      `${where} has slipstream format generation ${shown}; this version reads generation ${READABLE_GENERATIONS.join(", ")}`,
    );
  }
}

/** Encodes the `cursor` record (empty for none). */
export function encodeCursor(cursor: WatchCursor): Buffer {
  return Buffer.from(cursor.version.bytes);
}

/** Decodes the `cursor` record; absent or empty → none; more than 10 bytes → `SNAPSHOT_INVALID_FORMAT`. */
export function decodeCursor(record: Uint8Array | undefined, where: string): WatchCursor {
  if (record === undefined || record.length === 0) return WatchCursor.none();
  if (record.length > VERSION_TOKEN_CAPACITY) {
    throw invalid(
      `${where} has a ${record.length}-byte cursor record; a cursor holds at most ${VERSION_TOKEN_CAPACITY} bytes`,
    );
  }
  return WatchCursor.fromVersion(VersionToken.fromBytes(record));
}

/** Encodes the `count` record. */
export function encodeCount(count: number): Buffer {
  const out = Buffer.alloc(8);
  out.writeBigUInt64BE(BigInt(count));
  return out;
}

/** Decodes the `count` record; anything but 8 bytes holding a safe integer → `SNAPSHOT_INVALID_FORMAT`. */
export function decodeCount(record: Uint8Array | undefined, where: string): number {
  if (record === undefined) throw invalid(`${where} has a format record but no entry count record`);
  if (record.length !== 8) throw invalid(`${where} has a ${record.length}-byte entry count record; expected 8 bytes`);
  const n = Buffer.from(record).readBigUInt64BE();
  if (n > BigInt(Number.MAX_SAFE_INTEGER)) throw invalid(`${where} has an implausible entry count ${n}`);
  return Number(n);
}

/** Encodes the optional `scope` record of a partial fold (a canonical, non-empty prefix list). */
export function encodeScope(scope: readonly string[]): Buffer {
  const parts: Buffer[] = [];
  for (const p of scope) {
    const bytes = Buffer.from(p, "utf8");
    const len = Buffer.alloc(4);
    len.writeUInt32BE(bytes.length);
    parts.push(len, bytes);
  }
  return Buffer.concat(parts);
}

/**
 * Decodes the `scope` record: absent → the whole bucket; anything but a canonical,
 * non-empty list of valid prefixes → `SNAPSHOT_INVALID_FORMAT`.
 */
export function decodeScope(record: Uint8Array | undefined, where: string): FoldScope {
  if (record === undefined) return undefined;
  const buf = Buffer.from(record);
  const out: string[] = [];
  const utf8 = new TextDecoder("utf-8", { fatal: true });
  let at = 0;
  try {
    while (at < buf.length) {
      if (at + 4 > buf.length) throw new Error("truncated length");
      const len = buf.readUInt32BE(at);
      at += 4;
      if (at + len > buf.length) throw new Error("truncated prefix");
      out.push(utf8.decode(buf.subarray(at, at + len)));
      at += len;
    }
    const canonical = normalizeScope(out);
    if (out.length === 0 || canonical === undefined || canonical.join("\0") !== out.join("\0")) {
      throw new Error("not a canonical, non-empty prefix list");
    }
  } catch (err) {
    throw invalid(`${where} has a malformed scope record: ${(err as Error).message}`);
  }
  return out;
}

/**
 * The smallest byte string greater than every string starting with `prefix`, or undefined
 * when there is none (empty prefix, or a prefix of only 0xff bytes): drop trailing 0xff
 * bytes, then increment the last byte.
 */
export function prefixUpperBound(prefix: Uint8Array): Buffer | undefined {
  let end = prefix.length;
  while (end > 0 && prefix[end - 1] === 0xff) end--;
  if (end === 0) return undefined;
  const out = Buffer.from(prefix.subarray(0, end));
  out[end - 1] = (out[end - 1] as number) + 1;
  return out;
}
