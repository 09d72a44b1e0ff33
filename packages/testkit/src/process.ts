import type { ChildProcess } from "node:child_process";
import { rm } from "node:fs/promises";
import { setTimeout as sleep } from "node:timers/promises";
import { trackChild, untrackDir } from "./cleanup.js";

/** A server refused to start because its port was taken (the caller retries on another). */
export class AddressInUse extends Error {}

/** Resolves when `child` has exited (at once if it already has). */
export function exitOf(child: ChildProcess): Promise<void> {
  return new Promise<void>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve();
    else child.once("exit", () => resolve());
  });
}

/**
 * Registers `child` for kill-on-exit and unrefs it and its pipes: a forgotten server never
 * keeps the test process alive (the exit hook kills it).
 */
export function adoptChild(child: ChildProcess): void {
  trackChild(child);
  child.unref();
  for (const stream of [child.stdin, child.stdout, child.stderr]) {
    (stream as unknown as { unref?: () => void } | null)?.unref?.();
  }
}

/**
 * The lifecycle every test-kit server shares: one child process at a time, a bounded log,
 * graceful stop with a SIGKILL fallback, kill, restart on the same port, and close (kill +
 * remove the temporary base directory). Subclasses spawn and wait for readiness in `launch`.
 */
export abstract class ServerProcess implements AsyncDisposable {
  protected child: ChildProcess | undefined;
  protected exited: Promise<void> = Promise.resolve();
  protected closed = false;
  readonly #logLines: string[] = [];

  constructor(
    protected readonly baseDir: string,
    private readonly maxLogLines: number,
    private readonly graceMs: number,
  ) {}

  /** Spawns (or re-spawns) the server and waits until it is ready. */
  abstract launch(): Promise<void>;

  /** Whether the server process is currently alive. */
  get running(): boolean {
    const c = this.child;
    return c !== undefined && c.exitCode === null && c.signalCode === null;
  }

  /** OS process id of the current server process, if running. */
  get pid(): number | undefined {
    return this.running ? this.child?.pid : undefined;
  }

  /** The server's recent output. */
  logs(): string {
    return this.#logLines.join("\n");
  }

  protected appendLog(text: string): void {
    for (const line of text.split("\n")) if (line) this.#logLines.push(line);
    if (this.#logLines.length > this.maxLogLines) this.#logLines.splice(0, this.#logLines.length - this.maxLogLines);
  }

  /** Makes `child` the current process: tracked, unref'd, its output logged, its exit observed. */
  protected adopt(child: ChildProcess, logOutput = true): void {
    this.child = child;
    adoptChild(child);
    if (logOutput) {
      for (const stream of [child.stdout, child.stderr]) {
        stream?.on("data", (chunk: Buffer) => this.appendLog(chunk.toString("utf8")));
      }
    }
    this.exited = exitOf(child);
  }

  private async signalAndWait(signal: NodeJS.Signals): Promise<void> {
    if (!this.running) return;
    this.child?.kill(signal);
    // A ref'd grace timer keeps the event loop alive while we wait (the child is unref'd),
    // and is cleared as soon as the server exits, so it never delays the caller's exit.
    let timer: NodeJS.Timeout | undefined;
    const done = await Promise.race([
      this.exited.then(() => true),
      new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(false), this.graceMs);
      }),
    ]);
    clearTimeout(timer);
    if (!done && this.running) {
      this.child?.kill("SIGKILL");
      await this.exited;
    }
  }

  /** Graceful shutdown: SIGTERM, then waits for the process to exit (SIGKILL after the grace period). */
  stop(): Promise<void> {
    return this.signalAndWait("SIGTERM");
  }

  /** SIGKILL (no graceful shutdown); waits until the process is gone. */
  kill(): Promise<void> {
    return this.signalAndWait("SIGKILL");
  }

  /** Stops if running, then starts again on the same port with the same data; waits until ready. */
  async restart(): Promise<void> {
    await this.stop();
    // The same port is required; someone may have taken it meanwhile, so retry briefly.
    const deadline = Date.now() + 5_000;
    for (;;) {
      try {
        await this.launch();
        return;
      } catch (err) {
        if (!(err instanceof AddressInUse) || Date.now() > deadline) throw err;
        await sleep(100);
      }
    }
  }

  /** Kills the server if running and removes its temporary directory. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.kill();
    await removeBaseDir(this.baseDir);
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/** Removes a server's temporary base directory and stops tracking it. */
export async function removeBaseDir(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true, maxRetries: 3 });
  untrackDir(dir);
}

/**
 * Starts a server on fresh free ports until one is not taken (up to 10 attempts); on any
 * other failure removes the base directory and rethrows.
 */
export async function launchWithRetry<S extends ServerProcess>(baseDir: string, make: () => Promise<S>): Promise<S> {
  for (let attempt = 1; ; attempt++) {
    const server = await make();
    try {
      await server.launch();
      return server;
    } catch (err) {
      if (err instanceof AddressInUse && attempt < 10) continue;
      await removeBaseDir(baseDir);
      throw err;
    }
  }
}
