/**
 * The conductor's handle on one node process: fork it, send commands, await its replies,
 * SIGKILL it. Messages not awaited (the live line, transfer progress) go to listeners.
 */
import { type ChildProcess, fork } from "node:child_process";
import { extname } from "node:path";
import { fileURLToPath } from "node:url";
import type { Command, NodeConfig, NodeMessage } from "./protocol.js";

type Of<T extends NodeMessage["type"]> = Extract<NodeMessage, { type: T }>;

/** A running node process. */
export class NodeProcess {
  readonly name: string;
  readonly forkedAt = performance.now();
  /** When the process reported itself running (modules loaded): "time to ready" counts from here. */
  helloAt: number | undefined;
  #child: ChildProcess;
  #inbox: NodeMessage[] = [];
  #waiters: { type: string; resolve: (m: NodeMessage) => void; reject: (e: Error) => void }[] = [];
  #exit: string | undefined;
  #failure: string | undefined;
  /** The last live report. */
  live: Of<"live"> | undefined;
  /** Called with every live report. */
  onLive: ((m: Of<"live">) => void) | undefined;
  /** Called with every transfer progress report (export, upload, download, import). */
  onTransfer: ((m: Of<"transfer">) => void) | undefined;

  private constructor(name: string, child: ChildProcess) {
    this.name = name;
    this.#child = child;
    child.on("message", (m: NodeMessage) => {
      if (m.type === "live") {
        this.live = m;
        this.onLive?.(m);
        return;
      }
      if (m.type === "hello") {
        this.helloAt = performance.now();
        return;
      }
      if (m.type === "transfer") {
        this.onTransfer?.(m);
        return;
      }
      if (m.type === "failed") this.#failure = m.error;
      const i = this.#waiters.findIndex((w) => w.type === m.type);
      const w = i >= 0 ? this.#waiters.splice(i, 1)[0] : undefined;
      if (w) w.resolve(m);
      else this.#inbox.push(m);
      if (m.type === "failed") this.#rejectAll();
    });
    child.on("exit", (code, signal) => {
      this.#exit = signal ?? `exit code ${code}`;
      this.#rejectAll();
    });
  }

  /** Forks `node.(js|ts)` beside this module (the same loader flags as this process). */
  static start(config: NodeConfig): NodeProcess {
    const here = fileURLToPath(import.meta.url);
    const script = fileURLToPath(new URL(`./node${extname(here)}`, import.meta.url));
    const child = fork(script, [], { stdio: ["ignore", "inherit", "inherit", "ipc"] });
    const node = new NodeProcess(config.name, child);
    node.send({ cmd: "config", config });
    return node;
  }

  #rejectAll(): void {
    const why = this.#failure ?? `node ${this.name} exited (${this.#exit})`;
    for (const w of this.#waiters.splice(0)) w.reject(new Error(`node ${this.name}: ${why}`));
  }

  /** Sends a command (ignored once the process is gone). */
  send(c: Command): void {
    if (this.#child.connected) this.#child.send(c);
  }

  /** The next message of `type` (one already received counts). */
  next<T extends NodeMessage["type"]>(type: T): Promise<Of<T>> {
    const i = this.#inbox.findIndex((m) => m.type === type);
    if (i >= 0) return Promise.resolve(this.#inbox.splice(i, 1)[0] as Of<T>);
    if (this.#exit !== undefined || this.#failure !== undefined)
      return Promise.reject(new Error(`node ${this.name}: ${this.#failure ?? `exited (${this.#exit})`}`));
    return new Promise((resolve, reject) => this.#waiters.push({ type, resolve: (m) => resolve(m as Of<T>), reject }));
  }

  /** Resolves once the node's applied cursor is at or past `revision`. */
  /** Milliseconds from the process's hello (its own start-up excluded) until now. */
  sinceHello(): number {
    return performance.now() - (this.helloAt ?? this.forkedAt);
  }

  async reach(revision: bigint): Promise<Of<"reached">> {
    this.send({ cmd: "reach", revision: String(revision) });
    return this.next("reached");
  }

  /** The fold's key count and content digest, with the watch's counters. */
  async digest(): Promise<Of<"digest">> {
    this.send({ cmd: "digest" });
    return this.next("digest");
  }

  /** Graceful stop: the watch commits what it applied, the process exits. */
  async stop(): Promise<bigint> {
    this.send({ cmd: "stop" });
    const m = await this.next("stopped");
    await this.exited();
    return BigInt(m.cursor);
  }

  /** Crash: SIGKILL, no chance to flush or commit anything. */
  async kill(): Promise<void> {
    this.#child.kill("SIGKILL");
    await this.exited();
  }

  /** Resolves once the process has exited. */
  exited(): Promise<void> {
    if (this.#exit !== undefined) return Promise.resolve();
    return new Promise((resolve) => this.#child.once("exit", () => resolve()));
  }

  /** Whether the process is still alive. */
  get running(): boolean {
    return this.#exit === undefined;
  }
}
