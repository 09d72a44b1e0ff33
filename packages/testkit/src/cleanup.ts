import type { ChildProcess } from "node:child_process";
import { readFileSync, rmSync } from "node:fs";

/**
 * Process-wide registry of everything the test kit started or created, so that nothing
 * outlives the test process: live child processes are SIGKILLed and tracked temporary
 * directories removed on `exit`, `SIGINT` and `SIGTERM`.
 */
const children = new Set<ChildProcess>();
const dirs = new Set<string>();
let installed = false;

function isAlive(child: ChildProcess): boolean {
  return child.exitCode === null && child.signalCode === null;
}

/**
 * Whether a process still runs (Linux: not yet a zombie). Used at exit, where no event
 * loop turn is left to observe the child's `exit` event.
 */
function processRuns(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const state = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
    return state !== "Z" && state !== "X";
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return false;
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  }
}

const sleepCell = new Int32Array(new SharedArrayBuffer(4));

/** Synchronously kills every tracked child and removes every tracked directory. */
export function cleanupAllSync(): void {
  const killed: number[] = [];
  for (const child of children) {
    if (isAlive(child)) {
      try {
        child.kill("SIGKILL");
        if (child.pid !== undefined) killed.push(child.pid);
      } catch {
        // already gone
      }
    }
  }
  children.clear();
  // Let the kills land before deleting their directories (a dying server could still
  // recreate files under a directory being removed). Bounded: at most half a second.
  const deadline = Date.now() + 500;
  for (const pid of killed) {
    while (processRuns(pid) && Date.now() < deadline) Atomics.wait(sleepCell, 0, 0, 5);
  }
  for (const dir of dirs) {
    try {
      rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
    } catch {
      // best effort at exit
    }
  }
  dirs.clear();
}

function onSignal(signal: NodeJS.Signals): void {
  cleanupAllSync();
  process.removeListener(signal, onSignal);
  // Keep the default behaviour (terminate) unless someone else handles the signal.
  if (process.listenerCount(signal) === 0) process.kill(process.pid, signal);
}

function install(): void {
  if (installed) return;
  installed = true;
  process.on("exit", cleanupAllSync);
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
}

/** Tracks a child process until it exits. */
export function trackChild(child: ChildProcess): void {
  install();
  children.add(child);
  child.once("exit", () => children.delete(child));
}

/** Tracks a directory to remove at process exit (until {@link untrackDir}). */
export function trackDir(dir: string): void {
  install();
  dirs.add(dir);
}

/** Stops tracking a directory (it was removed by its owner). */
export function untrackDir(dir: string): void {
  dirs.delete(dir);
}
