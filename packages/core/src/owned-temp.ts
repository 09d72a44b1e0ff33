/**
 * Temporary directories that name their owner process, so a crashed process's leftovers
 * can be told apart from a live one's and removed. A SIGKILL inside an export, upload,
 * download or import skips every `finally`; without this, each such crash leaked a whole
 * copy of the fold (invariant 5: artifacts are transient).
 */
import { createHash } from "node:crypto";
import { mkdtemp, readdir, rm } from "node:fs/promises";
import { hostname } from "node:os";
import { join } from "node:path";

/** This host, hashed to 8 hex digits (a pid means nothing on another host sharing the dir). */
const HOST_TAG = createHash("sha256").update(hostname()).digest("hex").slice(0, 8);
const OWNER = /^([0-9a-f]{8})\.(\d+)-/;

/** True when a process with this pid exists on this host (EPERM: it exists, owned by someone else). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code !== "ESRCH";
  }
}

/**
 * Creates `<parent>/<prefix><host>.<pid>-XXXXXX` with `mkdtemp`: a temporary directory that
 * {@link sweepAbandonedTemps} removes once this process is gone.
 */
export function mkdtempOwned(parent: string, prefix: string): Promise<string> {
  return mkdtemp(join(parent, `${prefix}${HOST_TAG}.${process.pid}-`));
}

/**
 * Removes the directories `<parent>/<prefix>…` made by {@link mkdtempOwned} on this host by
 * a process that no longer runs. Live owners (this process included), other hosts and
 * names without an owner are left alone. Best effort: never throws. Liveness is judged by
 * pid on this host's name, so processes in separate PID namespaces (containers) that share
 * one directory must run under distinct host names.
 *
 * @returns the names removed
 */
export async function sweepAbandonedTemps(parent: string, prefix: string): Promise<string[]> {
  const removed: string[] = [];
  let names: string[];
  try {
    names = await readdir(parent);
  } catch {
    return removed;
  }
  for (const name of names) {
    if (!name.startsWith(prefix)) continue;
    const m = OWNER.exec(name.slice(prefix.length));
    if (!m || m[1] !== HOST_TAG) continue;
    const pid = Number(m[2]);
    if (pid === process.pid || processAlive(pid)) continue;
    try {
      await rm(join(parent, name), { recursive: true, force: true });
      removed.push(name);
    } catch {
      // best effort: the next sweep tries again
    }
  }
  return removed;
}
