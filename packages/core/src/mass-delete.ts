/**
 * The mass-delete guard shared by a resync (`watchApplied`) and an artifact import that
 * replaces an existing fold (`importRemote` with `replace`): a step that would delete or
 * drop more than a configured share of a fold is not applied unless a hook allows it, so a
 * wrongly purged bucket or a near-empty artifact cannot empty a whole fleet at once.
 */

import type { WatchCursor } from "./cursor.js";
import { invalidArgument } from "./errors.js";

/** Options of the mass-delete guard; `false` in its place turns the guard off. */
export interface MassDeleteGuard {
  /** Largest share of the fold's keys in scope a step may delete unasked. @defaultValue 0.5 */
  maxShare?: number;
  /** Deletes below this count never trip the guard. @defaultValue 100 */
  minKeys?: number;
  /** Decides a tripped guard: true applies the step, false (or throwing) refuses it. */
  onMassDelete?: (info: MassDeleteInfo) => boolean | Promise<boolean>;
}

/** What a tripped {@link MassDeleteGuard} reports. */
export interface MassDeleteInfo {
  /** What would delete: a resync's synthetic deletes, or an import replacing the fold. */
  source?: "resync" | "import";
  /** Keys the step would delete (for an import: how many fewer keys the artifact holds). */
  deletes: number;
  /** Keys in the fold within the scope. */
  foldKeys: number;
  /** Live keys the bucket listed within the scope (for an import: keys the artifact holds in scope). */
  liveKeys: number;
  /** The fold's cursor. */
  cursor: WatchCursor;
  /** A few of the keys that would go (at most 20; empty when unknown). */
  sample: string[];
}

/** A {@link MassDeleteGuard} with its defaults applied. */
export interface ResolvedMassDeleteGuard {
  readonly maxShare: number;
  readonly minKeys: number;
  readonly onMassDelete?: MassDeleteGuard["onMassDelete"];
}

/**
 * Validates a guard and applies its defaults (`maxShare` 0.5, `minKeys` 100); undefined
 * when the guard is off (`false`). A bad `maxShare`/`minKeys` → `INVALID_ARGUMENT`.
 */
export function resolveMassDeleteGuard(
  g: MassDeleteGuard | false | undefined,
  name = "massDelete",
): ResolvedMassDeleteGuard | undefined {
  if (g === false) return undefined;
  if (g !== undefined && (typeof g !== "object" || g === null)) {
    throw new TypeError(`${name} must be an object or false`);
  }
  const maxShare = g?.maxShare ?? 0.5;
  if (typeof maxShare !== "number" || !(maxShare >= 0 && maxShare <= 1)) {
    throw invalidArgument(`${name}.maxShare must be a number in 0..1, got ${String(maxShare)}`);
  }
  const minKeys = g?.minKeys ?? 100;
  if (!Number.isSafeInteger(minKeys) || minKeys < 0) {
    throw invalidArgument(`${name}.minKeys must be a non-negative integer, got ${String(minKeys)}`);
  }
  if (g?.onMassDelete !== undefined && typeof g.onMassDelete !== "function") {
    throw new TypeError(`${name}.onMassDelete must be a function`);
  }
  return { maxShare, minKeys, ...(g?.onMassDelete ? { onMassDelete: g.onMassDelete } : {}) };
}

/** True when deleting `deletes` of a fold's `foldKeys` keys trips the guard. */
export function massDeleteTrips(
  guard: ResolvedMassDeleteGuard | undefined,
  deletes: number,
  foldKeys: number,
): boolean {
  if (!guard || deletes <= 0) return false;
  return deletes >= guard.minKeys && deletes > guard.maxShare * foldKeys;
}

/**
 * Asks the guard's hook about a tripped guard: true only when `onMassDelete` returned
 * exactly `true`. A throwing hook refuses; its error is returned as `hookError`.
 */
export async function askMassDelete(
  guard: ResolvedMassDeleteGuard,
  info: MassDeleteInfo,
): Promise<{ allowed: boolean; hookError?: unknown }> {
  if (!guard.onMassDelete) return { allowed: false };
  try {
    return { allowed: (await guard.onMassDelete(info)) === true };
  } catch (err) {
    return { allowed: false, hookError: err };
  }
}
