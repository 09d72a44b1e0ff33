/**
 * Key, prefix and bucket-name validation, and the mapping from watch scopes to subject
 * filters. Invalid input fails here with `INVALID_ARGUMENT` instead of as an obscure server
 * error after a round trip.
 *
 * Prefix semantics: a prefix is always a **byte prefix** of the key, the same meaning a
 * SnapshotStore's `range(prefix)` has. NATS filters are subject-token based, so the server
 * side filters on the longest dot-terminated part of the prefix and the rest is matched
 * client-side: `"node."` → server filter `$KV.<b>.node.>` only; `"node.a"` → server filter
 * `$KV.<b>.node.>` plus a client check `key.startsWith("node.a")` (so `node.a`, `node.ab`
 * and `node.a.b` match); `"node"` → the whole bucket, filtered client-side. Dot-terminated
 * prefixes are therefore the efficient choice.
 */
import { invalidArgument } from "@slipstream/core";

/** Characters a key token may hold (the nats.js KV key alphabet). */
const KEY_RE = /^[-/=.\w]+$/;
const BUCKET_RE = /^[-\w]+$/;

/** Longest key accepted: keeps `PUB $KV.<bucket>.<key> …` well under the 4 KiB control line. */
export const MAX_KEY_LENGTH = 2048;
/** Longest bucket name accepted (the stream name `KV_<name>` must stay a reasonable file name). */
export const MAX_BUCKET_NAME_LENGTH = 200;

function describe(v: unknown): string {
  if (typeof v !== "string") return typeof v;
  const s = v.length > 60 ? `${v.slice(0, 60)}…` : v;
  return JSON.stringify(s);
}

/** Throws `INVALID_ARGUMENT` unless `key` is a valid KV key. */
export function validateKey(key: unknown): asserts key is string {
  if (typeof key !== "string") throw invalidArgument(`key must be a string, got ${describe(key)}`);
  if (key.length === 0) throw invalidArgument("key must not be empty");
  if (key.length > MAX_KEY_LENGTH)
    throw invalidArgument(`key is ${key.length} characters; at most ${MAX_KEY_LENGTH} allowed`);
  if (!KEY_RE.test(key)) {
    throw invalidArgument(
      `invalid key ${describe(key)}: only letters, digits and - / _ = . are allowed (no spaces, wildcards * > or $)`,
    );
  }
  if (key.startsWith(".") || key.endsWith(".") || key.includes("..")) {
    throw invalidArgument(`invalid key ${describe(key)}: dot-separated tokens must not be empty`);
  }
}

/** Throws `INVALID_ARGUMENT` unless `prefix` is "" or a valid byte prefix of keys. */
export function validatePrefix(prefix: unknown): asserts prefix is string {
  if (typeof prefix !== "string") throw invalidArgument(`prefix must be a string, got ${describe(prefix)}`);
  if (prefix === "") return;
  if (prefix.length > MAX_KEY_LENGTH)
    throw invalidArgument(`prefix is ${prefix.length} characters; at most ${MAX_KEY_LENGTH}`);
  if (!KEY_RE.test(prefix)) {
    throw invalidArgument(
      `invalid prefix ${describe(prefix)}: only letters, digits and - / _ = . are allowed (no spaces, wildcards * > or $)`,
    );
  }
  if (prefix.startsWith(".") || prefix.includes("..")) {
    throw invalidArgument(`invalid prefix ${describe(prefix)}: dot-separated tokens must not be empty`);
  }
}

/** Throws `INVALID_ARGUMENT` unless `name` is a valid bucket name. */
export function validateBucketName(name: unknown): asserts name is string {
  if (typeof name !== "string") throw invalidArgument(`bucket name must be a string, got ${describe(name)}`);
  if (name.length === 0) throw invalidArgument("bucket name must not be empty");
  if (name.length > MAX_BUCKET_NAME_LENGTH) {
    throw invalidArgument(`bucket name is ${name.length} characters; at most ${MAX_BUCKET_NAME_LENGTH}`);
  }
  if (!BUCKET_RE.test(name)) {
    throw invalidArgument(`invalid bucket name ${describe(name)}: only letters, digits, - and _ are allowed`);
  }
}

/** The subject-token part of a prefix the server can filter on ("node.a" → "node."). */
function serverPart(prefix: string): string {
  return prefix.slice(0, prefix.lastIndexOf(".") + 1);
}

/** How a set of byte prefixes is watched or listed. */
export interface FilterPlan {
  /** Server-side subject filters (non-overlapping). Empty = nothing to watch. */
  readonly subjects: string[];
  /** Client-side check of a decoded key (byte-prefix semantics). */
  readonly accepts: (key: string) => boolean;
  /** True when the client check can reject keys the server filters let through. */
  readonly clientFiltered: boolean;
}

/**
 * Plans the filters for byte `prefixes` in bucket subject space `subjectPrefix`
 * (`$KV.<bucket>.`). With `multiFilter` false (server < 2.10) several distinct filters
 * collapse into one filter on the whole bucket, narrowed client-side.
 */
export function planFilters(subjectPrefix: string, prefixes: readonly string[], multiFilter: boolean): FilterPlan {
  for (const p of prefixes) validatePrefix(p);
  const unique = [...new Set(prefixes)];
  if (unique.length === 0) return { subjects: [], accepts: () => false, clientFiltered: false };
  // Drop server parts covered by a shorter one ("a." covers "a.b."; "" covers all).
  const parts = [...new Set(unique.map(serverPart))].sort((a, b) => a.length - b.length);
  const kept: string[] = [];
  for (const part of parts) if (!kept.some((k) => part.startsWith(k))) kept.push(part);
  const whole = !multiFilter && kept.length > 1;
  const subjects = whole ? [`${subjectPrefix}>`] : kept.map((p) => `${subjectPrefix}${p}>`);
  const exact = unique.every((p) => p === serverPart(p)) && !whole;
  const accepts = unique.includes("") ? () => true : (key: string) => unique.some((p) => key.startsWith(p));
  return { subjects, accepts, clientFiltered: !exact };
}
