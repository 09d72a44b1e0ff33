/**
 * Object names of the pointer-swap layout:
 *
 * - pointer: `<prefix>/<key>.manifest.json` — the manifest bytes, published last;
 * - payload: `<prefix>/<key>.payloads/<rank as 16+ hex>-<first 16 hex of sha256(manifest)>.tar`
 *   — write-once and content-addressed, so a payload name is derived from the pointer bytes
 *   alone and the rank in the name lets pruning order payloads without reading them.
 */
import { createHash } from "node:crypto";
import { cursorRank, type ExportManifest } from "@slipstream/core";

/** Suffix of the pointer object. */
export const POINTER_SUFFIX = ".manifest.json";
/** Suffix of the folder of payload objects. */
export const PAYLOADS_SUFFIX = ".payloads/";

const PAYLOAD_NAME_RE = /^([0-9a-f]{16,20})-([0-9a-f]{16})\.tar$/;

/** Joins a (possibly empty) prefix and a key with `/`. */
export function joinKey(prefix: string, key: string): string {
  return prefix === "" ? key : `${prefix}/${key}`;
}

/** The pointer object of `key` under `prefix`. */
export function pointerKeyOf(prefix: string, key: string): string {
  return `${joinKey(prefix, key)}${POINTER_SUFFIX}`;
}

/** The prefix under which the payloads of `key` live (ends with `/`). */
export function payloadPrefixOf(prefix: string, key: string): string {
  return `${joinKey(prefix, key)}${PAYLOADS_SUFFIX}`;
}

/** The payload file name for a manifest and its exact bytes. */
export function payloadName(manifest: ExportManifest, manifestBytes: Uint8Array): string {
  const rank = cursorRank(manifest.cursor).toString(16).padStart(16, "0");
  const digest = createHash("sha256").update(manifestBytes).digest("hex").slice(0, 16);
  return `${rank}-${digest}.tar`;
}

/** The rank and digest encoded in a payload file name; undefined for names that are not ours. */
export function parsePayloadName(name: string): { rank: bigint; digest: string } | undefined {
  const m = PAYLOAD_NAME_RE.exec(name);
  if (!m?.[1] || !m[2]) return undefined;
  return { rank: BigInt(`0x${m[1]}`), digest: m[2] };
}
