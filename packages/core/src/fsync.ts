import { open } from "node:fs/promises";
import { dirname } from "node:path";

/** fsyncs a file or directory by path (directories: so renames and new entries are durable). */
export async function fsyncPath(path: string): Promise<void> {
  const fh = await open(path, "r");
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** fsyncs the directory holding `path`. */
export function fsyncParent(path: string): Promise<void> {
  return fsyncPath(dirname(path));
}
