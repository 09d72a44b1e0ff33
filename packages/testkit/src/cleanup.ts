import type { ChildProcess } from "node:child_process";
import { rmSync } from "node:fs";

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

/** Synchronously kills every tracked child and removes every tracked directory. */
export function cleanupAllSync(): void {
  for (const child of children) {
    if (isAlive(child)) {
      try {
        child.kill("SIGKILL");
      } catch {
        // already gone
      }
    }
  }
  children.clear();
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
