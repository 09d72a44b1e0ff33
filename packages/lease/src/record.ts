import { WatchCursor } from "@slipstream/core";

/** What the lease key holds (compact JSON). Times are milliseconds since the epoch. */
export interface LeaseRecord {
  /** Who holds (or last held) the lease. */
  readonly holder: string;
  readonly acquiredAt: number;
  /** After this instant any candidate may take the lease over. */
  readonly expiresAt: number;
  /** The cursor the holder exported, once it completed its round. */
  readonly completedCursor?: WatchCursor;
  readonly completedAt?: number;
}

/** Encodes a record as compact JSON bytes. */
export function encodeLeaseRecord(r: LeaseRecord): Uint8Array {
  const doc: Record<string, unknown> = { holder: r.holder, acquiredAt: r.acquiredAt, expiresAt: r.expiresAt };
  if (r.completedCursor !== undefined) doc.completedCursor = r.completedCursor.toHex();
  if (r.completedAt !== undefined) doc.completedAt = r.completedAt;
  return new TextEncoder().encode(JSON.stringify(doc));
}

/**
 * Decodes a record, tolerating unknown fields; returns undefined for anything that is not a
 * well-formed record (garbage, empty tombstones), which candidates may take over.
 */
export function decodeLeaseRecord(bytes: Uint8Array): LeaseRecord | undefined {
  if (bytes.length === 0) return undefined;
  let doc: unknown;
  try {
    doc = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch {
    return undefined;
  }
  if (typeof doc !== "object" || doc === null) return undefined;
  const d = doc as Record<string, unknown>;
  if (typeof d.holder !== "string" || !Number.isFinite(d.acquiredAt) || !Number.isFinite(d.expiresAt)) {
    return undefined;
  }
  let completedCursor: WatchCursor | undefined;
  if (typeof d.completedCursor === "string") {
    try {
      completedCursor = WatchCursor.fromHex(d.completedCursor);
    } catch {
      return undefined;
    }
  }
  return {
    holder: d.holder,
    acquiredAt: d.acquiredAt as number,
    expiresAt: d.expiresAt as number,
    ...(completedCursor ? { completedCursor } : {}),
    ...(Number.isFinite(d.completedAt) ? { completedAt: d.completedAt as number } : {}),
  };
}
