/**
 * Runs one benchmark in a child Node process, so its heap starts fresh and its RSS figures
 * are its own (in one process, V8 keeps the heap of the benchmarks before it).
 */
import { fork } from "node:child_process";
import { fileURLToPath } from "node:url";
import type { BenchOptions } from "./options.js";
import type { BenchResult } from "./result.js";

/** Parent → child: which benchmark with which sizes. */
export interface ChildRequest {
  readonly id: string;
  readonly options: Omit<BenchOptions, "log">;
}

/** Child → parent messages. */
export type ChildMessage =
  | { readonly type: "log"; readonly line: string }
  | { readonly type: "result"; readonly result: BenchResult }
  | { readonly type: "error"; readonly error: string };

/**
 * Forks `child.js` beside this module, hands it the request and resolves with its result;
 * rejects with the child's error, or when it exits without a result.
 */
export function runIsolated(
  id: string,
  options: BenchOptions,
  log: ((line: string) => void) | undefined,
): Promise<BenchResult> {
  const script = fileURLToPath(new URL("./child.js", import.meta.url));
  const { log: _ignored, ...sizes } = options;
  return new Promise((resolve, reject) => {
    // --expose-gc: each memory phase starts after a full collection (see RssSampler.phase),
    // so a phase's peak is not the garbage the phase before it left behind.
    const child = fork(script, [], {
      serialization: "advanced",
      stdio: ["ignore", "inherit", "inherit", "ipc"],
      execArgv: [...process.execArgv, "--expose-gc"],
    });
    let settled = false;
    child.on("message", (m: ChildMessage) => {
      if (m.type === "log") log?.(m.line);
      else if (m.type === "result") {
        settled = true;
        resolve(m.result);
      } else {
        settled = true;
        reject(new Error(m.error));
      }
    });
    child.on("error", (err) => {
      if (!settled) reject(err);
      settled = true;
    });
    child.on("exit", (code, signal) => {
      if (!settled) reject(new Error(`benchmark process for ${id} exited (${signal ?? code}) without a result`));
      settled = true;
    });
    const request: ChildRequest = { id, options: sizes };
    child.send(request);
  });
}
