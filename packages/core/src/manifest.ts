import { WatchCursor } from "./cursor.js";
import { artifactInvalid } from "./errors.js";
import { MAX_SCOPE_PREFIXES, scopePrefixProblem } from "./fold-scope.js";
import type { ArtifactEncryption, ArtifactFile, ArtifactSignature, ExportManifest } from "./types.js";

/** The manifest's file name inside an artifact directory. */
export const MANIFEST_FILE = "MANIFEST.json";
/** The payload directory inside an artifact. */
export const PAYLOAD_DIR = "data";
/** The artifact schema this version writes and reads. */
export const ARTIFACT_SCHEMA_VERSION = 1;
/** The most manifest bytes read from anywhere (disk or remote): 1 MiB. */
export const MAX_MANIFEST_BYTES = 1024 * 1024;

const MANIFEST_KEYS = ["schemaVersion", "backend", "backendVersion", "cursor", "createdAt", "files"];
const FILE_KEYS = ["path", "size", "sha256"];
// Optional fields: omitted from the canonical encoding when absent (old manifests stay byte-identical).
const OPTIONAL_MANIFEST_KEYS = ["scope", "exporter", "chunkSize", "encryption", "signature"];
const OPTIONAL_FILE_KEYS = ["chunks"];
const ENCRYPTION_KEYS = ["algorithm", "keyId", "wrappedKey", "nonceSalt"];
const SIGNATURE_KEYS = ["algorithm", "keyId", "value"];
const KEY_ID_RE = /^[0-9a-f]{16}$/;
const BASE64_RE = /^[A-Za-z0-9+/]+={0,2}$/;

/** Canonical base64 only: decoding and re-encoding gives the same text (no ignored bits). */
function canonicalBase64(v: unknown, maxLength: number): v is string {
  return (
    typeof v === "string" &&
    v.length <= maxLength &&
    BASE64_RE.test(v) &&
    Buffer.from(v, "base64").toString("base64") === v
  );
}
/** Smallest and largest chunk size a manifest may declare (4 KiB – 64 MiB). */
export const CHUNK_SIZE_LIMITS = { min: 4096, max: 64 * 1024 * 1024 } as const;
const SHA256_RE = /^[0-9a-f]{64}$/;
const CURSOR_HEX_RE = /^(?:[0-9a-f]{2}){0,10}$/;
const BACKEND_RE = /^[a-z0-9][a-z0-9._-]{0,63}$/;
const MAX_PATH_BYTES = 4096;
/** The most characters (code points) of a manifest's `exporter`. */
export const MAX_EXPORTER_CHARS = 256;
// Printable: no control or format characters, no lone surrogates, no line/paragraph
// separators, so an exporter shown in a terminal or a log line is exactly what it says.
const UNPRINTABLE_RE = /[\p{Cc}\p{Cf}\p{Cs}\p{Zl}\p{Zp}]/u;

/**
 * Why `exporter` is not an acceptable manifest `exporter`, or undefined when it is: a
 * non-empty string of at most {@link MAX_EXPORTER_CHARS} printable characters.
 */
export function exporterProblem(exporter: unknown): string | undefined {
  if (typeof exporter !== "string") return "must be a string";
  if (exporter.length === 0) return "is empty";
  if ([...exporter].length > MAX_EXPORTER_CHARS) return `is longer than ${MAX_EXPORTER_CHARS} characters`;
  if (UNPRINTABLE_RE.test(exporter)) return "contains a control, format or separator character";
  return undefined;
}

/**
 * Why `path` is not an acceptable payload path, or undefined when it is. Accepted: `data/`
 * followed by one or more normal segments separated by single `/`.
 */
export function payloadPathProblem(path: unknown): string | undefined {
  if (typeof path !== "string") return "must be a string";
  if (path.length === 0) return "is empty";
  if (Buffer.byteLength(path) > MAX_PATH_BYTES) return `is longer than ${MAX_PATH_BYTES} bytes`;
  if (path.includes("\0")) return "contains a NUL byte";
  if (path.includes("\\")) return "contains a backslash";
  if (path.startsWith("/")) return "is absolute";
  const segments = path.split("/");
  if (segments[0] !== PAYLOAD_DIR) return `is outside ${PAYLOAD_DIR}/`;
  if (segments.length < 2) return `names ${PAYLOAD_DIR}/ itself, not a file under it`;
  for (const seg of segments.slice(1)) {
    if (seg === "") return "has an empty or doubled segment";
    if (seg === "." || seg === "..") return `has a '${seg}' segment`;
  }
  return undefined;
}

function compareUtf8(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}

/** Sorts artifact files by path in byte order, as the manifest requires. */
export function sortFiles(files: readonly ArtifactFile[]): ArtifactFile[] {
  return [...files].sort((a, b) => compareUtf8(a.path, b.path));
}

/**
 * Canonical bytes of a manifest: 2-space JSON, fields in schema order, files sorted by path,
 * trailing newline. Download compares these bytes, so never re-serialise a parsed manifest
 * to check equality; compare the bytes that were read.
 */
export function encodeManifest(manifest: ExportManifest): string {
  const doc = {
    schemaVersion: manifest.schemaVersion,
    backend: manifest.backend,
    backendVersion: manifest.backendVersion,
    cursor: manifest.cursor.toHex(),
    // Absent = the whole bucket; left out so that unscoped manifests keep their exact bytes.
    ...(manifest.scope !== undefined ? { scope: [...manifest.scope] } : {}),
    createdAt: manifest.createdAt.toISOString(),
    // Optional fields appear only when set, so manifests without them keep their bytes.
    ...(manifest.exporter !== undefined ? { exporter: manifest.exporter } : {}),
    files: sortFiles(manifest.files).map((f) => ({
      path: f.path,
      size: f.size,
      sha256: f.sha256,
      ...(f.chunks !== undefined ? { chunks: f.chunks } : {}),
    })),
    ...(manifest.chunkSize !== undefined ? { chunkSize: manifest.chunkSize } : {}),
    ...(manifest.encryption !== undefined ? { encryption: pick(manifest.encryption, ENCRYPTION_KEYS) } : {}),
    ...(manifest.signature !== undefined ? { signature: pick(manifest.signature, SIGNATURE_KEYS) } : {}),
  };
  return `${JSON.stringify(doc, null, 2)}\n`;
}

function pick<T extends object>(obj: T, keys: string[]): Record<string, unknown> {
  return Object.fromEntries(keys.map((k) => [k, (obj as Record<string, unknown>)[k]]));
}

function exactKeys(obj: Record<string, unknown>, keys: string[], where: string, optional: string[] = []): void {
  for (const k of Object.keys(obj)) {
    if (!keys.includes(k) && !optional.includes(k))
      throw artifactInvalid(`malformed manifest: unknown field ${JSON.stringify(k)} in ${where}`);
  }
  for (const k of keys) {
    if (!(k in obj)) throw artifactInvalid(`malformed manifest: missing field "${k}" in ${where}`);
  }
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/**
 * Strictly parses manifest bytes. Any deviation — unknown or missing fields, wrong types,
 * an unsupported schema, bad cursor hex, hostile or unsorted paths, oversize input — fails
 * with `ARTIFACT_INVALID` naming the field and the reason.
 */
export function parseManifest(input: Uint8Array | string): ExportManifest {
  const size = typeof input === "string" ? Buffer.byteLength(input) : input.byteLength;
  if (size > MAX_MANIFEST_BYTES) {
    throw artifactInvalid(`manifest is ${size} bytes; it exceeds ${MAX_MANIFEST_BYTES} bytes`);
  }
  let text: string;
  try {
    text = typeof input === "string" ? input : new TextDecoder("utf-8", { fatal: true }).decode(input);
  } catch (err) {
    throw artifactInvalid("malformed manifest: not UTF-8", err);
  }
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw artifactInvalid(`malformed manifest: ${(err as Error).message}`, err);
  }
  if (!isPlainObject(doc)) throw artifactInvalid("malformed manifest: expected a JSON object");
  if (!("schemaVersion" in doc)) throw artifactInvalid('malformed manifest: missing field "schemaVersion"');
  if (doc.schemaVersion !== ARTIFACT_SCHEMA_VERSION) {
    throw artifactInvalid(
      `unsupported artifact schemaVersion ${JSON.stringify(doc.schemaVersion)}; this version reads ${ARTIFACT_SCHEMA_VERSION}`,
    );
  }
  exactKeys(doc, MANIFEST_KEYS, "manifest", OPTIONAL_MANIFEST_KEYS);
  const { backend, backendVersion, cursor, createdAt, files, exporter } = doc;
  if (typeof backend !== "string" || !BACKEND_RE.test(backend)) {
    throw artifactInvalid(`malformed manifest: backend ${JSON.stringify(backend)} must match ${BACKEND_RE}`);
  }
  if (typeof backendVersion !== "string" || backendVersion.length === 0 || backendVersion.length > 64) {
    throw artifactInvalid("malformed manifest: backendVersion must be a non-empty string of at most 64 chars");
  }
  if (typeof cursor !== "string" || !CURSOR_HEX_RE.test(cursor)) {
    throw artifactInvalid(
      `malformed manifest: cursor ${JSON.stringify(typeof cursor === "string" ? cursor.slice(0, 40) : cursor)} must be lowercase hex of at most 10 bytes`,
    );
  }
  if (typeof createdAt !== "string" || Number.isNaN(Date.parse(createdAt))) {
    throw artifactInvalid("malformed manifest: createdAt must be an ISO 8601 timestamp");
  }
  const badExporter = "exporter" in doc ? exporterProblem(exporter) : undefined;
  if (badExporter) throw artifactInvalid(`malformed manifest: exporter ${badExporter}`);
  const scope = "scope" in doc ? parseScope(doc.scope) : undefined;
  if (!Array.isArray(files)) throw artifactInvalid("malformed manifest: files must be an array");
  const parsed: ArtifactFile[] = [];
  let previous: string | undefined;
  files.forEach((f: unknown, i: number) => {
    const where = `files[${i}]`;
    if (!isPlainObject(f)) throw artifactInvalid(`malformed manifest: ${where} must be an object`);
    exactKeys(f, FILE_KEYS, where, OPTIONAL_FILE_KEYS);
    const problem = payloadPathProblem(f.path);
    if (problem) throw artifactInvalid(`malformed manifest: ${where}.path ${JSON.stringify(f.path)} ${problem}`);
    const path = f.path as string;
    if (typeof f.size !== "number" || !Number.isSafeInteger(f.size) || f.size < 0) {
      throw artifactInvalid(`malformed manifest: ${where}.size must be a non-negative integer`);
    }
    if (typeof f.sha256 !== "string" || !SHA256_RE.test(f.sha256)) {
      throw artifactInvalid(`malformed manifest: ${where}.sha256 must be 64 lowercase hex digits`);
    }
    if (previous !== undefined && compareUtf8(previous, path) >= 0) {
      throw artifactInvalid(
        `malformed manifest: ${where}.path ${JSON.stringify(path)} is duplicated or not sorted after ${JSON.stringify(previous)}`,
      );
    }
    previous = path;
    if (f.chunks === undefined) parsed.push({ path, size: f.size, sha256: f.sha256 });
    else
      parsed.push({
        path,
        size: f.size,
        sha256: f.sha256,
        chunks: parseChunks(f.chunks, f.size, doc.chunkSize, where),
      });
  });
  // A directory and a file of the same name cannot both exist ("data/a" and "data/a/b").
  const paths = new Set(parsed.map((f) => f.path));
  for (const f of parsed) {
    const segs = f.path.split("/");
    for (let i = 2; i < segs.length; i++) {
      const parent = segs.slice(0, i).join("/");
      if (paths.has(parent)) throw artifactInvalid(`malformed manifest: ${parent} is both a file and a directory`);
    }
  }
  const transport = parseTransportFields(doc, parsed);
  return {
    schemaVersion: 1,
    backend,
    backendVersion,
    cursor: WatchCursor.fromHex(cursor),
    ...(scope !== undefined ? { scope } : {}),
    createdAt: new Date(createdAt),
    ...(typeof exporter === "string" ? { exporter } : {}),
    files: parsed,
    ...transport,
  };
}

/**
 * The optional `scope` field: a non-empty array of valid prefixes in canonical form (sorted
 * in byte order, none a prefix of another), so that equal scopes always have equal bytes.
 */
function parseScope(value: unknown): string[] {
  if (!Array.isArray(value) || value.length === 0) {
    throw artifactInvalid(
      "malformed manifest: scope must be a non-empty array of key prefixes (omit it for the whole bucket)",
    );
  }
  if (value.length > MAX_SCOPE_PREFIXES) {
    throw artifactInvalid(`malformed manifest: scope lists ${value.length} prefixes; at most ${MAX_SCOPE_PREFIXES}`);
  }
  const out: string[] = [];
  value.forEach((p: unknown, i: number) => {
    const problem = scopePrefixProblem(p);
    if (problem) throw artifactInvalid(`malformed manifest: scope[${i}] ${JSON.stringify(p)} ${problem}`);
    const prefix = p as string;
    const previous = out.at(-1);
    if (previous !== undefined && compareUtf8(previous, prefix) >= 0) {
      throw artifactInvalid(
        `malformed manifest: scope[${i}] ${JSON.stringify(prefix)} is duplicated or not sorted after ${JSON.stringify(previous)}`,
      );
    }
    if (previous !== undefined && prefix.startsWith(previous)) {
      throw artifactInvalid(
        `malformed manifest: scope[${i}] ${JSON.stringify(prefix)} is already covered by ${JSON.stringify(previous)}`,
      );
    }
    out.push(prefix);
  });
  return out;
}

/** Chunks of a file of `size` bytes at `chunkSize` per chunk (an empty file has none). */
export function chunkCount(size: number, chunkSize: number): number {
  return Math.ceil(size / chunkSize);
}

function parseChunks(chunks: unknown, size: number, chunkSize: unknown, where: string): string[] {
  if (typeof chunkSize !== "number") throw artifactInvalid(`malformed manifest: ${where}.chunks needs chunkSize`);
  if (!Array.isArray(chunks) || !chunks.every((c) => typeof c === "string" && SHA256_RE.test(c))) {
    throw artifactInvalid(`malformed manifest: ${where}.chunks must be an array of 64 lowercase hex digits`);
  }
  if (chunkSize > 0 && chunks.length !== chunkCount(size, chunkSize)) {
    throw artifactInvalid(
      `malformed manifest: ${where}.chunks has ${chunks.length} hashes; ${size} bytes at chunkSize ${chunkSize} need ${chunkCount(size, chunkSize)}`,
    );
  }
  return chunks as string[];
}

function parseTransportFields(
  doc: Record<string, unknown>,
  files: readonly ArtifactFile[],
): { chunkSize?: number; encryption?: ArtifactEncryption; signature?: ArtifactSignature } {
  const out: { chunkSize?: number; encryption?: ArtifactEncryption; signature?: ArtifactSignature } = {};
  const { chunkSize, encryption, signature } = doc;
  if (chunkSize !== undefined) {
    if (
      typeof chunkSize !== "number" ||
      !Number.isSafeInteger(chunkSize) ||
      chunkSize < CHUNK_SIZE_LIMITS.min ||
      chunkSize > CHUNK_SIZE_LIMITS.max
    ) {
      throw artifactInvalid(
        `malformed manifest: chunkSize must be an integer from ${CHUNK_SIZE_LIMITS.min} to ${CHUNK_SIZE_LIMITS.max}`,
      );
    }
    const unchunked = files.find((f) => f.chunks === undefined);
    if (unchunked) throw artifactInvalid(`malformed manifest: ${unchunked.path} has no chunks but chunkSize is set`);
    out.chunkSize = chunkSize;
  }
  if (encryption !== undefined) {
    if (!isPlainObject(encryption)) throw artifactInvalid("malformed manifest: encryption must be an object");
    exactKeys(encryption, ENCRYPTION_KEYS, "encryption");
    const { algorithm, keyId, wrappedKey, nonceSalt } = encryption;
    if (algorithm !== "aes-256-gcm")
      throw artifactInvalid(
        `malformed manifest: encryption.algorithm ${JSON.stringify(algorithm)} is not "aes-256-gcm"`,
      );
    if (typeof keyId !== "string" || keyId.length === 0 || keyId.length > 256) {
      throw artifactInvalid("malformed manifest: encryption.keyId must be a non-empty string of at most 256 chars");
    }
    if (!canonicalBase64(wrappedKey, 8192)) {
      throw artifactInvalid("malformed manifest: encryption.wrappedKey must be canonical base64");
    }
    if (typeof nonceSalt !== "string" || !/^[0-9a-f]{24}$/.test(nonceSalt)) {
      throw artifactInvalid("malformed manifest: encryption.nonceSalt must be 24 lowercase hex digits");
    }
    if (out.chunkSize === undefined) throw artifactInvalid("malformed manifest: encryption needs chunkSize");
    out.encryption = { algorithm, keyId, wrappedKey, nonceSalt };
  }
  if (signature !== undefined) {
    if (!isPlainObject(signature)) throw artifactInvalid("malformed manifest: signature must be an object");
    exactKeys(signature, SIGNATURE_KEYS, "signature");
    const { algorithm, keyId, value } = signature;
    if (algorithm !== "ed25519")
      throw artifactInvalid(`malformed manifest: signature.algorithm ${JSON.stringify(algorithm)} is not "ed25519"`);
    if (typeof keyId !== "string" || !KEY_ID_RE.test(keyId)) {
      throw artifactInvalid("malformed manifest: signature.keyId must be 16 lowercase hex digits");
    }
    if (!canonicalBase64(value, 1024) || Buffer.from(value, "base64").byteLength !== 64) {
      throw artifactInvalid("malformed manifest: signature.value must be the canonical base64 of 64 bytes");
    }
    out.signature = { algorithm, keyId, value };
  }
  return out;
}
