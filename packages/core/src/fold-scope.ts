/**
 * The scope of a fold or an artifact: which key prefixes it holds. A fleet node that
 * watches only `route.eu.` may bootstrap from an artifact of a wider scope (keeping only
 * its prefixes) but never from a narrower one: keys it needs would silently be missing.
 *
 * A scope is a minimal, sorted list of byte prefixes (no prefix of another, UTF-8 byte
 * order), or `undefined` for the whole bucket. Prefixes follow the watch-scope rules: the
 * KV key alphabet, no empty dot-separated token.
 */
import { invalidArgument, SlipstreamError } from "./errors.js";
import { scopePrefixes, type WatchScope } from "./types.js";

/** Prefixes a fold or an artifact holds (sorted, minimal); `undefined` = the whole bucket. */
export type FoldScope = readonly string[] | undefined;

/** Most prefixes a scope may list. */
export const MAX_SCOPE_PREFIXES = 1024;
/** Longest prefix accepted (the longest KV key). */
export const MAX_SCOPE_PREFIX_LENGTH = 2048;

const PREFIX_RE = /^[-/=.\w]+$/;

function compareBytes(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}

/**
 * Why `prefix` is not an acceptable scope prefix, or undefined when it is: a non-empty
 * string of the KV key alphabet (letters, digits, `- / _ = .`) without an empty
 * dot-separated token, at most {@link MAX_SCOPE_PREFIX_LENGTH} characters.
 */
export function scopePrefixProblem(prefix: unknown): string | undefined {
  if (typeof prefix !== "string") return "must be a string";
  if (prefix.length === 0) return "is empty (the whole bucket is an absent scope)";
  if (prefix.length > MAX_SCOPE_PREFIX_LENGTH) return `is longer than ${MAX_SCOPE_PREFIX_LENGTH} characters`;
  if (!PREFIX_RE.test(prefix)) return "may hold only letters, digits and - / _ = .";
  if (prefix.startsWith(".") || prefix.includes("..")) return "has an empty dot-separated token";
  return undefined;
}

/**
 * The canonical form of a set of prefixes: `undefined` when one of them is `""` (the whole
 * bucket), else deduplicated, sorted in UTF-8 byte order, without prefixes another one
 * already covers (`["route.", "route.eu."]` → `["route."]`). An empty list stays empty
 * (a scope of nothing). Invalid prefixes → `INVALID_ARGUMENT`.
 */
export function normalizeScope(prefixes: readonly string[]): string[] | undefined {
  if (!Array.isArray(prefixes)) throw new TypeError("scope prefixes must be an array of strings");
  if (prefixes.includes("")) return undefined;
  if (prefixes.length > MAX_SCOPE_PREFIXES) {
    throw invalidArgument(`a scope lists at most ${MAX_SCOPE_PREFIXES} prefixes, got ${prefixes.length}`);
  }
  for (const p of prefixes) {
    const problem = scopePrefixProblem(p);
    if (problem) throw invalidArgument(`scope prefix ${JSON.stringify(p)} ${problem}`);
  }
  return coveringPrefixes(prefixes);
}

/**
 * The prefixes of `prefixes` that no other one covers, deduplicated and in UTF-8 byte order
 * (`["route.eu.", "route."]` → `["route."]`; `""` covers everything). No validation: each
 * key matching any of them matches exactly one of the result.
 */
export function coveringPrefixes(prefixes: readonly string[]): string[] {
  const sorted = [...new Set(prefixes)].sort(compareBytes);
  const kept: string[] = [];
  // In byte order a prefix sorts before every key it covers, and everything between them
  // shares it: checking the last kept prefix is enough.
  for (const p of sorted) {
    const last = kept.at(-1);
    if (last === undefined || !p.startsWith(last)) kept.push(p);
  }
  return kept;
}

/** The fold scope of a watch scope: what a node watching `scope` needs its fold to hold. */
export function foldScopeOf(scope: WatchScope): string[] | undefined {
  return normalizeScope(scopePrefixes(scope));
}

/**
 * True when `outer` holds every key `inner` may hold: the whole bucket covers everything;
 * otherwise every prefix of `inner` must start with a prefix of `outer` (and `inner` must
 * not be the whole bucket).
 */
export function scopeCovers(outer: FoldScope, inner: FoldScope): boolean {
  if (outer === undefined) return true;
  if (inner === undefined) return false;
  return inner.every((p) => outer.some((o) => p.startsWith(o)));
}

/** True when `key` lies within `scope` (byte-prefix semantics; `undefined` holds every key). */
export function inFoldScope(scope: FoldScope, key: string): boolean {
  return scope === undefined || scope.some((p) => key.startsWith(p));
}

/** Human-readable form of a scope, for messages and the CLI. */
export function describeScope(scope: FoldScope): string {
  if (scope === undefined) return "the whole bucket";
  if (scope.length === 0) return "no prefix";
  return scope.map((p) => JSON.stringify(p)).join(", ");
}

/**
 * Throws `SCOPE_NOT_COVERED` unless `held` (what an artifact or a fold holds) covers
 * `wanted` (what a node or an export needs). `what` names the holder in the message.
 */
export function assertScopeCovers(held: FoldScope, wanted: FoldScope, what: string): void {
  if (scopeCovers(held, wanted)) return;
  throw new SlipstreamError(
    "SCOPE_NOT_COVERED",
    `${what} holds ${describeScope(held)}, which does not cover the scope needed here (${describeScope(wanted)}): keys of that scope would be missing`,
  );
}

/** True when two fold scopes hold the same prefixes. */
export function sameScope(a: FoldScope, b: FoldScope): boolean {
  if (a === undefined || b === undefined) return a === b;
  return a.length === b.length && a.every((p, i) => p === b[i]);
}

/**
 * The scope an export writes: the requested one, which the fold's own scope `held` must
 * cover (`SCOPE_NOT_COVERED` otherwise; an empty one → `INVALID_ARGUMENT`), or, when none
 * is requested, everything the fold holds.
 */
export function resolveExportScope(held: FoldScope, requested: WatchScope | undefined): FoldScope {
  if (requested === undefined) return held;
  const wanted = foldScopeOf(requested);
  if (wanted?.length === 0) throw invalidArgument("an export scope must name at least one prefix");
  assertScopeCovers(held, wanted, "this fold");
  return wanted;
}

/**
 * The fold scope an import keeps for a node watching `requested` (absent: the whole
 * bucket). An empty one → `INVALID_ARGUMENT`.
 */
export function resolveImportScope(requested: WatchScope | undefined): FoldScope {
  if (requested === undefined) return undefined;
  const keep = foldScopeOf(requested);
  if (keep?.length === 0) throw invalidArgument("an import scope must name at least one prefix");
  return keep;
}
