/** Small filesystem helpers for the benchmarks. */
import { spawn } from "node:child_process";
import { readdir, stat } from "node:fs/promises";
import { join } from "node:path";

/** Total size in bytes of the regular files under `dir` (recursive). */
export async function dirBytes(dir: string): Promise<number> {
  let total = 0;
  for (const d of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, d.name);
    if (d.isDirectory()) total += await dirBytes(p);
    else if (d.isFile()) total += (await stat(p)).size;
  }
  return total;
}

/** The path of the largest regular file under `dir` (recursive). */
export async function largestFile(dir: string): Promise<string> {
  let best: { path: string; size: number } | undefined;
  const walk = async (d: string): Promise<void> => {
    for (const e of await readdir(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) await walk(p);
      else if (e.isFile()) {
        const size = (await stat(p)).size;
        if (!best || size > best.size) best = { path: p, size };
      }
    }
  };
  await walk(dir);
  if (!best) throw new Error(`no file under ${dir}`);
  return best.path;
}

/** Runs a command to completion; rejects with its stderr on a non-zero exit. */
export function run(cmd: string, args: readonly string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    child.stderr.setEncoding("utf8");
    child.stderr.on("data", (s: string) => {
      stderr += s;
    });
    child.on("error", reject);
    child.on("close", (code, signal) => {
      if (code === 0) resolve();
      else reject(new Error(`${cmd} ${args.join(" ")} failed (${signal ?? code}): ${stderr.trim()}`));
    });
  });
}

/** Pause after {@link quietDisk}'s `sync` (ms). */
const QUIET_PAUSE_MS = 500;

/**
 * Lets the disk finish what earlier phases left it (the write-back of hundreds of MiB of
 * folds and artifacts, deletes' discards): `sync`, then a short pause. Called before each
 * timed disk-bound phase — ours and the baselines alike — so that no measurement pays for
 * the previous one's write-back.
 */
export async function quietDisk(): Promise<void> {
  await run("sync", []);
  await new Promise((resolve) => setTimeout(resolve, QUIET_PAUSE_MS));
}
