import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { trackDir, untrackDir } from "./cleanup.js";

/** A temporary directory that removes itself on {@link TempDir.cleanup} or `await using`. */
export interface TempDir extends AsyncDisposable {
  /** Absolute path of the (existing, empty at creation) directory. */
  readonly path: string;
  /** Removes the directory and everything in it. Idempotent. */
  cleanup(): Promise<void>;
}

/**
 * Creates a fresh directory under the OS temp dir. It is also removed at process exit if
 * the test forgot to clean it up.
 *
 * @param prefix - the directory name prefix (default `slipstream-test-`)
 */
export async function tempDir(prefix = "slipstream-test-"): Promise<TempDir> {
  const path = await mkdtemp(join(tmpdir(), prefix));
  trackDir(path);
  const cleanup = async (): Promise<void> => {
    await rm(path, { recursive: true, force: true, maxRetries: 3 });
    untrackDir(path);
  };
  return { path, cleanup, [Symbol.asyncDispose]: cleanup };
}
