/**
 * A file-level checkpoint of a live LevelDB directory: the immutable table files (`*.ldb`,
 * `*.sst`) are hard-linked, the mutable ones (`CURRENT`, the `MANIFEST-*` it names, the
 * write-ahead `*.log` files) are byte-copied. The caller holds every write off (the store's
 * exclusive section), so the only thing that can move meanwhile is a background compaction
 * or memtable flush; the copy detects that and starts over (bounded attempts).
 */
import { copyFile, link, open, readdir, readFile, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import { hashFile, SlipstreamError, throwIfAborted } from "@slipstream/core";

/** How many times a checkpoint is retried when a compaction moved the live set under it. */
export const CHECKPOINT_ATTEMPTS = 8;

const LOG_RE = /^\d+\.log$/;
const MANIFEST_RE = /^MANIFEST-\d+$/;

/** What a checkpoint needs from the live database. */
export interface CheckpointSource {
  /** The live database directory. */
  readonly dir: string;
  /** File numbers of the live table files of the current version. */
  liveTables(): number[];
}

/** How a checkpoint was made (for logs and tests). */
export interface CheckpointResult {
  /** Attempts it took (1 when nothing moved). */
  attempts: number;
  /** Table files hard-linked. */
  linked: number;
  /** Their names (LevelDB fsynced each when it wrote it, so the links need only their directory fsynced). */
  linkedFiles: string[];
  /** Files byte-copied (mutable files, and tables where a link was impossible). */
  copied: number;
  /** Bytes byte-copied. */
  copiedBytes: number;
}

/** `CURRENT` and the size of the MANIFEST it names: a MANIFEST edit changes one of them. */
interface ManifestMark {
  current: string;
  manifestSize: number;
}

async function manifestMark(dir: string): Promise<ManifestMark> {
  const current = await readFile(join(dir, "CURRENT"), "latin1");
  const name = current.trim();
  if (!MANIFEST_RE.test(name)) {
    throw new SlipstreamError(
      "SNAPSHOT_CORRUPTED",
      `LevelDB fold at ${dir} has a CURRENT file naming ${JSON.stringify(name)}`,
    );
  }
  return { current, manifestSize: (await stat(join(dir, name))).size };
}

function tableName(n: number): string {
  return `${String(n).padStart(6, "0")}.ldb`;
}

function sameSet(a: readonly number[], b: readonly number[]): boolean {
  if (a.length !== b.length) return false;
  const s = new Set(a);
  return b.every((n) => s.has(n));
}

/** Copies exactly the first `size` bytes of `from` (a file that may be appended to meanwhile). */
async function copyPrefix(from: string, to: string, size: number): Promise<void> {
  const src = await open(from, "r");
  try {
    const dst = await open(to, "wx", 0o644);
    try {
      const buf = Buffer.allocUnsafe(Math.min(Math.max(size, 1), 1 << 20));
      let pos = 0;
      while (pos < size) {
        const { bytesRead } = await src.read(buf, 0, Math.min(buf.length, size - pos), pos);
        if (bytesRead === 0) break;
        await dst.write(buf, 0, bytesRead);
        pos += bytesRead;
      }
      if (pos !== size) throw Object.assign(new Error(`${from} shrank while copying`), { code: "ENOENT" });
    } finally {
      await dst.close();
    }
  } finally {
    await src.close();
  }
}

/** Hard-links `from` to `to`, or byte-copies it where links are impossible (other filesystem, no permission). */
async function linkOrCopy(from: string, to: string): Promise<"linked" | "copied"> {
  try {
    await link(from, to);
    return "linked";
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== "EXDEV" && code !== "EPERM" && code !== "ENOTSUP" && code !== "EMLINK" && code !== "EOPNOTSUPP") {
      throw err;
    }
  }
  await copyFile(from, to);
  return "copied";
}

async function emptyDir(dir: string): Promise<void> {
  for (const name of await readdir(dir)) await rm(join(dir, name), { recursive: true, force: true });
}

function isVanished(err: unknown): boolean {
  return (err as NodeJS.ErrnoException).code === "ENOENT";
}

/**
 * Writes a checkpoint of `source` into the existing empty directory `destDir`. One attempt:
 * mark CURRENT + MANIFEST size, copy CURRENT and that MANIFEST prefix, read the live table
 * set, link those tables, copy the WAL files, then re-read the mark and the live set; if
 * either moved (a compaction or flush committed meanwhile) or a file vanished, empty
 * `destDir` and retry. The caller must still open the copy and compare its cursor: that
 * open also fails on any table the copied MANIFEST names but the copy lacks.
 *
 * @throws SlipstreamError `BACKEND` when the live set kept moving for {@link CHECKPOINT_ATTEMPTS} attempts.
 */
export async function checkpointLevelDb(
  source: CheckpointSource,
  destDir: string,
  opts: { signal?: AbortSignal | undefined; onBytes?: (bytesDone: number) => void } = {},
): Promise<CheckpointResult> {
  const { signal } = opts;
  const dir = source.dir;
  // Bytes placed (linked or copied) over every attempt: progress only grows.
  let placed = 0;
  const progress = async (path: string) => {
    const size = (await stat(path)).size;
    if (size === 0) return;
    placed += size;
    opts.onBytes?.(placed);
    throwIfAborted(signal, "export");
  };
  for (let attempt = 1; attempt <= CHECKPOINT_ATTEMPTS; attempt++) {
    throwIfAborted(signal, "export");
    const result: CheckpointResult = { attempts: attempt, linked: 0, linkedFiles: [], copied: 0, copiedBytes: 0 };
    try {
      const before = await manifestMark(dir);
      const manifestName = before.current.trim();
      const tables = source.liveTables();
      // Mutable files: byte copies (LevelDB appends to the MANIFEST and the log; a link would
      // let later writes of the live store reach into the artifact).
      await copyPrefix(join(dir, manifestName), join(destDir, manifestName), before.manifestSize);
      await progress(join(destDir, manifestName));
      result.copied++;
      result.copiedBytes += before.manifestSize;
      for (const n of tables) {
        throwIfAborted(signal, "export");
        const name = tableName(n);
        let how: "linked" | "copied";
        let placedAs = name;
        try {
          how = await linkOrCopy(join(dir, name), join(destDir, name));
        } catch (err) {
          // LevelDB names tables .ldb, but reads (and so may hold) the older .sst name too.
          if (!isVanished(err)) throw err;
          placedAs = name.replace(/\.ldb$/, ".sst");
          how = await linkOrCopy(join(dir, placedAs), join(destDir, placedAs));
        }
        await progress(join(destDir, placedAs));
        if (how === "linked") {
          result.linked++;
          result.linkedFiles.push(placedAs);
        } else {
          result.copied++;
        }
      }
      // Writes are held off by the caller, so the logs do not grow; a flush may delete one
      // (then the MANIFEST moved too and the attempt is retried).
      for (const name of await readdir(dir)) {
        if (!LOG_RE.test(name)) continue;
        const size = (await stat(join(dir, name))).size;
        await copyPrefix(join(dir, name), join(destDir, name), size);
        await progress(join(destDir, name));
        result.copied++;
        result.copiedBytes += size;
      }
      const after = await manifestMark(dir);
      if (
        after.current === before.current &&
        after.manifestSize === before.manifestSize &&
        sameSet(tables, source.liveTables())
      ) {
        // CURRENT last: a copy without it is not a database at all.
        await copyFile(join(dir, "CURRENT"), join(destDir, "CURRENT"));
        const content = await readFile(join(destDir, "CURRENT"), "latin1");
        if (content === before.current) {
          result.copied++;
          result.copiedBytes += content.length;
          return result;
        }
      }
    } catch (err) {
      if (!isVanished(err)) throw err;
    }
    await emptyDir(destDir);
  }
  throw new SlipstreamError(
    "BACKEND",
    `export of ${dir}: LevelDB's live file set kept changing (background compaction) for ${CHECKPOINT_ATTEMPTS} attempts`,
  );
}

const TABLE_FILE = /^\d+\.(?:ldb|sst)$/;

/**
 * SHA-256 digests of the live store's table files, so a repeated export hashes only the
 * tables written since the last one. Keyed by device, inode, size and mtime of the linked
 * file: LevelDB never rewrites a table, so the same inode holds the same bytes (a table
 * that could only be copied, not linked, gets a new inode and is hashed afresh). Holds only
 * the tables of the latest export.
 */
export class TableDigests {
  #known = new Map<string, { size: number; sha256: string }>();
  #seen = new Map<string, { size: number; sha256: string }>();

  /** A {@link SealOptions.hashFile} for one export; call {@link TableDigests.settle} after it. */
  readonly hash = async (
    path: string,
    abs: string,
    signal: AbortSignal | undefined,
  ): Promise<{ size: number; sha256: string }> => {
    if (!TABLE_FILE.test(path)) return hashFile(abs, signal === undefined ? {} : { signal });
    const st = await stat(abs, { bigint: true });
    const key = `${st.dev}:${st.ino}:${st.size}:${st.mtimeNs}`;
    const digest = this.#known.get(key) ?? (await hashFile(abs, signal === undefined ? {} : { signal }));
    this.#seen.set(key, digest);
    return digest;
  };

  /** Keeps the digests of the export that just finished (or forgets its partial set when it failed). */
  settle(ok: boolean): void {
    if (ok) this.#known = this.#seen;
    this.#seen = new Map();
  }
}
