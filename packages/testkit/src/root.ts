import { existsSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

/** The file that marks the root of the slipstream monorepo. */
const ROOT_MARKER = "pnpm-workspace.yaml";

function walkUp(start: string): string | undefined {
  let dir = resolve(start);
  for (;;) {
    if (existsSync(join(dir, ROOT_MARKER))) return dir;
    const parent = dirname(dir);
    if (parent === dir) return undefined;
    dir = parent;
  }
}

let cached: string | undefined;

/**
 * Finds the monorepo root: the nearest directory above this module (or, failing that,
 * above the current working directory) that holds `pnpm-workspace.yaml`.
 *
 * @returns the absolute path of the repository root
 * @throws Error when no such directory exists (the test kit is running outside the repo)
 */
export function repoRoot(): string {
  if (cached !== undefined) return cached;
  const found = walkUp(dirname(fileURLToPath(import.meta.url))) ?? walkUp(process.cwd());
  if (found === undefined) {
    throw new Error(
      `@slipstream/testkit: cannot find the repository root (no ${ROOT_MARKER} above this module or the cwd)`,
    );
  }
  cached = found;
  return found;
}

/** Like {@link repoRoot} but returns `undefined` instead of throwing. */
export function tryRepoRoot(): string | undefined {
  try {
    return repoRoot();
  } catch {
    return undefined;
  }
}
