/**
 * Where every file's body lies inside a payload tar, computed from the manifest alone.
 * `packArtifact` writes `MANIFEST.json`, the directories, then the files in manifest order,
 * each as a header (512 bytes, or a pax record for a name ustar cannot hold) followed by
 * its body padded to 512 bytes. A chunked downloader uses this to fetch each chunk's byte
 * range without reading the tar's headers; a miscomputed offset cannot slip through, since
 * every range is checked against the signed chunk hash before it is used.
 */
import { chunkCount, type ExportManifest, MANIFEST_FILE } from "@slipstream/core";
import { GCM_TAG_BYTES } from "./encryption.js";
import { payloadDirs } from "./tar.js";

function roundUp512(n: number): number {
  return Math.ceil(n / 512) * 512;
}

// The rules of tar-stream's header encoder: a name fits a plain ustar header when it is
// ASCII and splits at a `/` into a prefix of ≤155 bytes and a name of ≤100 bytes.
function fitsUstar(name: string): boolean {
  if (Buffer.byteLength(name) !== name.length) return false;
  let rest = name;
  let prefix = "";
  while (rest.length > 100) {
    const i = rest.indexOf("/");
    if (i === -1) return false;
    prefix += prefix ? `/${rest.slice(0, i)}` : rest.slice(0, i);
    rest = rest.slice(i + 1);
  }
  return rest.length <= 100 && prefix.length <= 155;
}

/** A pax record `<len> path=<name>\n` whose length counts its own digits. */
function paxRecordBytes(name: string): number {
  const len = Buffer.byteLength(` path=${name}\n`);
  let digits = Math.floor(Math.log10(len)) + 1;
  if (len + digits >= 10 ** digits) digits++;
  return len + digits;
}

/** Bytes of the header(s) preceding an entry's body. */
export function tarHeaderBytes(name: string): number {
  return fitsUstar(name) ? 512 : 512 + roundUp512(paxRecordBytes(name)) + 512;
}

/** The bytes a file occupies in the payload: its size, plus a GCM tag per chunk when encrypted. */
export function storedFileSize(manifest: ExportManifest, size: number): number {
  if (!manifest.encryption || manifest.chunkSize === undefined) return size;
  return size + chunkCount(size, manifest.chunkSize) * GCM_TAG_BYTES;
}

/** One file's body in the payload. */
export interface FileSpan {
  /** Byte offset of the body in the payload object. */
  readonly offset: number;
  /** Stored bytes (see {@link storedFileSize}). */
  readonly storedSize: number;
}

/** The span of each file of `manifest` (same order) in a payload whose embedded manifest is `manifestBytes`. */
export function payloadLayout(manifest: ExportManifest, manifestBytes: Uint8Array): FileSpan[] {
  let at = tarHeaderBytes(MANIFEST_FILE) + roundUp512(manifestBytes.byteLength);
  for (const d of payloadDirs(manifest)) at += tarHeaderBytes(`${d}/`);
  const spans: FileSpan[] = [];
  for (const f of manifest.files) {
    at += tarHeaderBytes(f.path);
    const storedSize = storedFileSize(manifest, f.size);
    spans.push({ offset: at, storedSize });
    at += roundUp512(storedSize);
  }
  return spans;
}
