/**
 * Opening a fold directory for reading. The directory must already be a fold: a missing or
 * empty directory is refused before anything is opened, because opening would create a new
 * fold there.
 */
import { lstat, readdir, stat } from "node:fs/promises";
import { join } from "node:path";
import { SlipstreamError } from "@slipstream/core";
import { LevelSnapshotStore } from "@slipstream/snapshot-leveldb";
import { CliError, EXIT } from "./exit.js";

/** Opens the existing fold at `dir`; the caller closes it. */
export async function openExistingFold(dir: string): Promise<LevelSnapshotStore> {
  const st = await stat(dir).catch((err: NodeJS.ErrnoException) => {
    if (err.code === "ENOENT") throw new CliError(EXIT.INPUT, "NOT_FOUND", `fold directory ${dir} does not exist`);
    throw err;
  });
  if (!st.isDirectory())
    throw new CliError(EXIT.INPUT, "NOT_A_FOLD", `${dir} is not a directory; a fold is a directory`);
  if ((await readdir(dir)).length === 0) {
    throw new CliError(EXIT.INPUT, "NOT_A_FOLD", `${dir} is empty; it is not a fold`);
  }
  try {
    return await LevelSnapshotStore.open(dir);
  } catch (err) {
    if (SlipstreamError.is(err, "BACKEND") && /locked/.test(err.message)) {
      throw new CliError(
        EXIT.REFUSED,
        "FOLD_LOCKED",
        `${err.message}. A running service holds this fold; stop it, or inspect an artifact it exported`,
        { cause: err },
      );
    }
    throw err;
  }
}

/** Figures read from the directory itself (before it is opened, which touches LevelDB's log files). */
export interface FoldDirFacts {
  /** Bytes of every file under the directory. */
  sizeOnDisk: number;
  files: number;
  /** The newest modification time among the database files (LOCK and LOG excluded): the last commit. */
  lastWrite: Date | undefined;
}

const RUNTIME = new Set(["LOCK", "LOG", "LOG.old"]);

/** Walks `dir` and sums what it holds. */
export async function foldDirFacts(dir: string): Promise<FoldDirFacts> {
  let sizeOnDisk = 0;
  let files = 0;
  let newest = 0;
  const walk = async (d: string): Promise<void> => {
    for (const e of await readdir(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) await walk(p);
      else if (e.isFile()) {
        const s = await lstat(p);
        sizeOnDisk += s.size;
        files++;
        if (!RUNTIME.has(e.name) && s.mtimeMs > newest) newest = s.mtimeMs;
      }
    }
  };
  await walk(dir).catch((err: NodeJS.ErrnoException) => {
    if (err.code === "ENOENT") throw new CliError(EXIT.INPUT, "NOT_FOUND", `fold directory ${dir} does not exist`);
    throw err;
  });
  return { sizeOnDisk, files, lastWrite: newest > 0 ? new Date(newest) : undefined };
}
