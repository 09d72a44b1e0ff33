/**
 * The upload side of chunked payloads: reading an artifact's files in fixed chunks, hashing
 * each chunk as it will be stored (after encryption, when on), and producing the same
 * stored bytes again while the tar streams out. Chunk boundaries are file-relative:
 * chunk `j` of a file is plaintext bytes `[j·chunkSize, (j+1)·chunkSize)`.
 */
import { createHash, webcrypto } from "node:crypto";
import { open } from "node:fs/promises";
import { join } from "node:path";
import {
  type ArtifactEncryption,
  type ArtifactFile,
  artifactInvalid,
  chunkCount,
  type ExportManifest,
  throwIfAborted,
} from "@slipstream/core";
import { encryptChunk } from "./encryption.js";

/** Default plaintext bytes per chunk (4 MiB). */
export const DEFAULT_CHUNK_BYTES = 4 * 1024 * 1024;

/** How chunks are sealed: the data key and the manifest's encryption block. */
export interface ChunkSealing {
  readonly dataKey: Buffer;
  readonly encryption: ArtifactEncryption;
}

/** Streams a file in `chunkSize` pieces; refuses a file whose length is not `size`. */
async function* readChunks(
  path: string,
  name: string,
  size: number,
  chunkSize: number,
  signal: AbortSignal | undefined,
): AsyncGenerator<Buffer> {
  const fh = await open(path, "r");
  try {
    for (let pos = 0; pos < size; pos += chunkSize) {
      throwIfAborted(signal, "reading the artifact");
      const want = Math.min(chunkSize, size - pos);
      const buf = Buffer.allocUnsafe(want);
      let got = 0;
      while (got < want) {
        const { bytesRead } = await fh.read(buf, got, want - got, pos + got);
        if (bytesRead === 0) throw artifactInvalid(`${name} is shorter than the ${size} bytes its manifest declares`);
        got += bytesRead;
      }
      yield buf;
    }
    const { bytesRead } = await fh.read(Buffer.alloc(1), 0, 1, size);
    if (bytesRead !== 0) throw artifactInvalid(`${name} is longer than the ${size} bytes its manifest declares`);
  } finally {
    await fh.close();
  }
}

/** The index (across the artifact) of each file's first chunk. */
export function firstChunkIndexes(manifest: ExportManifest, chunkSize: number): number[] {
  let n = 0;
  return manifest.files.map((f) => {
    const first = n;
    n += chunkCount(f.size, chunkSize);
    return first;
  });
}

/**
 * The stored bytes of one file: plain chunks, or each chunk encrypted (ciphertext + tag).
 * Each chunk is checked against `file.chunks` as it is produced: a file that changed since
 * its chunks were hashed fails the upload (`ARTIFACT_INVALID`) before the pointer is published.
 */
export async function* storedChunks(
  artifactDir: string,
  file: ArtifactFile,
  firstIndex: number,
  chunkSize: number,
  sealing: ChunkSealing | undefined,
  signal: AbortSignal | undefined,
): AsyncGenerator<Buffer> {
  let index = firstIndex;
  let j = 0;
  for await (const plain of readChunks(join(artifactDir, file.path), file.path, file.size, chunkSize, signal)) {
    const stored = sealing ? encryptChunk(sealing.dataKey, sealing.encryption.nonceSalt, index, plain) : plain;
    if (file.chunks !== undefined && createHash("sha256").update(stored).digest("hex") !== file.chunks[j]) {
      throw artifactInvalid(`${file.path} changed while it was uploaded (chunk ${j} differs from its hash)`);
    }
    yield stored;
    index++;
    j++;
  }
}

/**
 * Reads every file once: checks its SHA-256 against the manifest (nothing corrupt gets
 * signed) and hashes each stored chunk. Returns the files with their `chunks`.
 */
export async function hashChunks(
  artifactDir: string,
  manifest: ExportManifest,
  chunkSize: number,
  sealing: ChunkSealing | undefined,
  opts: { signal?: AbortSignal; onBytes?: (n: number) => void } = {},
): Promise<ArtifactFile[]> {
  const firsts = firstChunkIndexes(manifest, chunkSize);
  const out: ArtifactFile[] = [];
  for (const [i, f] of manifest.files.entries()) {
    const whole = createHash("sha256");
    const chunks: string[] = [];
    let index = firsts[i] as number;
    for await (const plain of readChunks(join(artifactDir, f.path), f.path, f.size, chunkSize, opts.signal)) {
      const stored = sealing ? encryptChunk(sealing.dataKey, sealing.encryption.nonceSalt, index, plain) : plain;
      // The chunk hash runs on the thread pool while the whole-file hash runs here.
      const chunkHash = webcrypto.subtle.digest("SHA-256", stored);
      whole.update(plain);
      chunks.push(Buffer.from(await chunkHash).toString("hex"));
      index++;
      opts.onBytes?.(plain.byteLength);
    }
    const sha256 = whole.digest("hex");
    if (sha256 !== f.sha256) {
      throw artifactInvalid(`artifact file ${f.path} checksum mismatch: expected sha256 ${f.sha256}, found ${sha256}`);
    }
    out.push({ path: f.path, size: f.size, sha256: f.sha256, chunks });
  }
  return out;
}
