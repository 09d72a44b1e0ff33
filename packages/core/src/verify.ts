/**
 * Verification of a whole artifact directory in place, without importing it: every manifest
 * field, every path, size and SHA-256. Backend-agnostic (it never opens the payload), and it
 * reports every defect it finds rather than stopping at the first, so an operator sees
 * exactly what is wrong.
 */
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { lstat, readdir } from "node:fs/promises";
import { join } from "node:path";
import { readManifest } from "./artifact.js";
import { abortedError, throwIfAborted } from "./async.js";
import { artifactInvalid, SlipstreamError } from "./errors.js";
import { MANIFEST_FILE, PAYLOAD_DIR } from "./manifest.js";
import { assertManifestTrusted, checkManifestSignature, type SignatureCheck, type TrustPolicy } from "./trust.js";
import type { ExportManifest, ProgressFn } from "./types.js";

/** What kind of defect an {@link ArtifactProblem} is. */
export type ArtifactProblemKind =
  /** MANIFEST.json is missing, a symlink, oversized or malformed (nothing else can be checked). */
  | "manifest"
  /** A file or directory the manifest does not declare. */
  | "undeclared"
  /** A declared file that is absent. */
  | "missing"
  /** A symlink, device, socket… where a regular file (or `data/` directory) belongs. */
  | "not-regular"
  /** A declared file whose size differs from the manifest. */
  | "size"
  /** A declared file whose SHA-256 differs from the manifest. */
  | "checksum"
  /** The manifest's signature is missing, bad, untrusted or expired under the given trust policy. */
  | "signature";

/** One defect of an artifact. */
export interface ArtifactProblem {
  readonly kind: ArtifactProblemKind;
  /** The artifact-relative path concerned (`data/…`, `MANIFEST.json`), when there is one. */
  readonly path?: string;
  /** What was expected and what was found. */
  readonly message: string;
}

/** The verdict on one declared file. */
export interface VerifiedFile {
  readonly path: string;
  readonly size: number;
  readonly sha256: string;
  readonly status: "ok" | "missing" | "not-regular" | "size" | "checksum";
}

/** The result of {@link verifyArtifact}. */
export interface ArtifactVerification {
  /** True when the artifact has no problem at all. */
  readonly ok: boolean;
  /** The parsed manifest; undefined when it could not be read. */
  readonly manifest: ExportManifest | undefined;
  /** The exact manifest bytes (what a pointer publishes); undefined when unreadable. */
  readonly manifestBytes: Uint8Array | undefined;
  /** Every declared file with its verdict, in manifest order. */
  readonly files: readonly VerifiedFile[];
  /** Every defect found, in a stable order (layout first, then per declared file). */
  readonly problems: readonly ArtifactProblem[];
  /** Payload bytes read and hashed. */
  readonly bytesChecked: number;
  /** The signature verdict (`unchecked` for a signed manifest when no trust was given); undefined when the manifest is unreadable. */
  readonly signature?: SignatureCheck | undefined;
}

/** Options of {@link verifyArtifact}. */
export interface VerifyArtifactOptions {
  signal?: AbortSignal;
  /** Receives `{ phase: "verify", bytesDone, bytesTotal }` while files are hashed. */
  onProgress?: ProgressFn;
  /** Check the manifest's signature against these trusted keys (a refusal is a `signature` problem). */
  trust?: TrustPolicy;
}

async function sha256Of(path: string, signal: AbortSignal | undefined, onBytes: (n: number) => void) {
  const hash = createHash("sha256");
  let size = 0;
  const stream = createReadStream(path, { highWaterMark: 1 << 20, ...(signal ? { signal } : {}) });
  for await (const chunk of stream as AsyncIterable<Buffer>) {
    hash.update(chunk);
    size += chunk.length;
    onBytes(chunk.length);
  }
  return { size, sha256: hash.digest("hex") };
}

/** Lists `data/` recursively: regular files, and entries of any other type (never followed). */
async function walk(root: string, rel: string, files: string[], odd: string[]): Promise<void> {
  const entries = await readdir(join(root, rel), { withFileTypes: true });
  for (const e of entries) {
    const relPath = `${rel}/${e.name}`;
    if (e.isDirectory()) await walk(root, relPath, files, odd);
    else if (e.isFile()) files.push(relPath);
    else odd.push(relPath);
  }
}

/**
 * Verifies the artifact at `dir` in place without importing it: reads MANIFEST.json
 * strictly (the same codec imports use), refuses undeclared, missing and non-regular files,
 * and re-hashes every declared file (size and SHA-256). It checks neither the backend id
 * nor that the payload opens: that is the backend's import (e.g. `LevelSnapshotStore.import`).
 *
 * Defects of the artifact are returned as {@link ArtifactVerification.problems}, never
 * thrown. Throws only when `dir` is not a directory (`ARTIFACT_INVALID`), on an aborted
 * signal (`ABORTED`) or an I/O failure (`BACKEND`).
 *
 * @example
 * ```ts
 * const v = await verifyArtifact("./artifact");
 * if (!v.ok) for (const p of v.problems) console.error(`${p.kind}: ${p.message}`);
 * ```
 */
export async function verifyArtifact(dir: string, opts: VerifyArtifactOptions = {}): Promise<ArtifactVerification> {
  if (typeof dir !== "string" || dir.length === 0) throw new TypeError("dir must be a non-empty string");
  try {
    return await verifyUntyped(dir, opts);
  } catch (err) {
    if (SlipstreamError.is(err)) throw err;
    if (opts.signal?.aborted) throw abortedError(opts.signal, `verifying ${dir}`);
    throw SlipstreamError.wrap(err, "BACKEND", `verifying ${dir}`);
  }
}

async function verifyUntyped(dir: string, opts: VerifyArtifactOptions): Promise<ArtifactVerification> {
  let st: Awaited<ReturnType<typeof lstat>>;
  try {
    st = await lstat(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") throw artifactInvalid(`${dir} does not exist`, err);
    throw err;
  }
  if (!st.isDirectory()) throw artifactInvalid(`${dir} is not a directory; an artifact is a directory`);

  const problems: ArtifactProblem[] = [];
  let manifest: ExportManifest;
  let manifestBytes: Uint8Array;
  try {
    ({ manifest, bytes: manifestBytes } = await readManifest(dir));
  } catch (err) {
    if (!SlipstreamError.is(err, "ARTIFACT_INVALID")) throw err;
    problems.push({ kind: "manifest", path: MANIFEST_FILE, message: err.message });
    return {
      ok: false,
      manifest: undefined,
      manifestBytes: undefined,
      files: [],
      problems,
      bytesChecked: 0,
      signature: undefined,
    };
  }
  const signature = checkManifestSignature(manifestBytes, manifest, opts.trust);
  try {
    assertManifestTrusted(manifestBytes, manifest, opts.trust);
  } catch (err) {
    if (!SlipstreamError.is(err)) throw err;
    problems.push({ kind: "signature", path: MANIFEST_FILE, message: `${err.code}: ${err.message}` });
  }

  // Layout: only MANIFEST.json and data/ at the top; under data/ only declared regular files.
  const present = new Set<string>();
  const odd = new Set<string>();
  for (const e of await readdir(dir, { withFileTypes: true })) {
    if (e.name === MANIFEST_FILE) continue;
    if (e.name === PAYLOAD_DIR) {
      if (e.isDirectory()) {
        const files: string[] = [];
        const others: string[] = [];
        await walk(dir, PAYLOAD_DIR, files, others);
        for (const f of files) present.add(f);
        for (const o of others) odd.add(o);
      } else {
        problems.push({
          kind: "not-regular",
          path: PAYLOAD_DIR,
          message: `${PAYLOAD_DIR} is not a directory`,
        });
      }
      continue;
    }
    problems.push({ kind: "undeclared", path: e.name, message: `undeclared entry at the top: ${e.name}` });
  }
  const declared = new Set(manifest.files.map((f) => f.path));
  const sortedExtra = [...present, ...odd].filter((p) => !declared.has(p)).sort();
  for (const p of sortedExtra) {
    problems.push({ kind: "undeclared", path: p, message: `payload contains undeclared file: ${p}` });
  }

  const total = manifest.files.reduce((n, f) => n + f.size, 0);
  let done = 0;
  const files: VerifiedFile[] = [];
  for (const f of manifest.files) {
    throwIfAborted(opts.signal, "verify");
    const base = { path: f.path, size: f.size, sha256: f.sha256 };
    if (odd.has(f.path)) {
      files.push({ ...base, status: "not-regular" });
      problems.push({ kind: "not-regular", path: f.path, message: `payload contains a non-regular file: ${f.path}` });
      continue;
    }
    if (!present.has(f.path)) {
      files.push({ ...base, status: "missing" });
      problems.push({ kind: "missing", path: f.path, message: `payload file missing: ${f.path}` });
      continue;
    }
    const abs = join(dir, f.path);
    const size = (await lstat(abs)).size;
    if (size !== f.size) {
      files.push({ ...base, status: "size" });
      problems.push({
        kind: "size",
        path: f.path,
        message: `payload file ${f.path} is ${size} bytes; the manifest declares ${f.size}`,
      });
      done += f.size;
      continue;
    }
    const got = await sha256Of(abs, opts.signal, (n) => {
      done += n;
      opts.onProgress?.({ phase: "verify", bytesDone: done, bytesTotal: total });
    });
    if (got.size !== f.size) {
      files.push({ ...base, status: "size" });
      problems.push({
        kind: "size",
        path: f.path,
        message: `payload file ${f.path} changed size while it was read (${got.size} ≠ ${f.size})`,
      });
    } else if (got.sha256 !== f.sha256) {
      files.push({ ...base, status: "checksum" });
      problems.push({
        kind: "checksum",
        path: f.path,
        message: `payload file ${f.path} checksum mismatch: expected sha256 ${f.sha256}, found ${got.sha256}`,
      });
    } else {
      files.push({ ...base, status: "ok" });
    }
  }
  opts.onProgress?.({ phase: "verify", bytesDone: total, bytesTotal: total });
  return { ok: problems.length === 0, manifest, manifestBytes, files, problems, bytesChecked: done, signature };
}
