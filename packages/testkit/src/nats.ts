import { execFileSync, spawn } from "node:child_process";
import { accessSync, constants as fsConstants, statSync } from "node:fs";
import { mkdir, mkdtemp, writeFile } from "node:fs/promises";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";
import { trackDir } from "./cleanup.js";
import { freePort } from "./port.js";
import { AddressInUse, launchWithRetry, ServerProcess } from "./process.js";
import { tryRepoRoot } from "./root.js";
import { waitFor } from "./wait.js";

/**
 * Which nats-server line a test needs.
 *
 * - `"2.9"`: a 2.9.x server (the Debian bookworm package, the "system" server).
 * - `"2.10"`: a 2.10.x server (needed for multi-filter consumers, `filter_subjects`).
 * - `"any"`: `NATS_SERVER_BIN` when set, else 2.10 when available, else 2.9, else any
 *   nats-server found.
 */
export type NatsVersionWanted = "2.9" | "2.10" | "any";

/** A nats-server executable and the version it reports. */
export interface NatsBinary {
  /** Path of the executable. */
  readonly path: string;
  /** Version reported by `--version`, e.g. `2.10.27`. */
  readonly version: string;
  /** Where it was found: `NATS_SERVER_BIN`, `NATS_SERVER_210_BIN`, `project cache` or `PATH`. */
  readonly source: string;
}

/** Options for {@link startNats}. */
export interface StartNatsOptions {
  /** Server line to run (default `"any"`, which prefers 2.10). */
  version?: NatsVersionWanted;
  /** JetStream resource limits in bytes (`max_memory_store` / `max_file_store`). */
  jetstream?: { maxMemory?: number; maxFile?: number };
  /** Extra command-line arguments appended after the test kit's own. */
  args?: string[];
  /** How long to wait for the server to become ready (default 20 000 ms). */
  readyTimeoutMs?: number;
}

/** The fields of a server's `INFO` greeting that tests care about, plus the raw object. */
export interface NatsInfo {
  /** Server version, e.g. `2.9.10`. */
  readonly version: string;
  /** Whether JetStream is enabled. */
  readonly jetstream: boolean;
  /** The server's id. */
  readonly serverId: string;
  /** The whole decoded `INFO` JSON. */
  readonly raw: Readonly<Record<string, unknown>>;
}

/** A running (or stopped) nats-server with JetStream, owned by one test. */
export interface NatsServerHandle extends AsyncDisposable {
  /** Client URL, `nats://127.0.0.1:<port>`. */
  readonly url: string;
  /** Loopback TCP port; stays the same across {@link NatsServerHandle.restart}. */
  readonly port: number;
  /** Server version, e.g. `2.10.27`. */
  readonly version: string;
  /** The JetStream store directory (kept across restarts, removed by `close()`). */
  readonly storeDir: string;
  /** The executable that runs. */
  readonly binary: NatsBinary;
  /** Whether the server process is currently alive. */
  readonly running: boolean;
  /** OS process id of the current server process, if running. */
  readonly pid: number | undefined;
  /** The server's recent log output (last few hundred lines), for failure messages. */
  logs(): string;
  /** Connects and reads the server's `INFO` greeting. */
  info(): Promise<NatsInfo>;
  /** Graceful shutdown: SIGTERM, then waits for the process to exit (SIGKILL after 10 s). */
  stop(): Promise<void>;
  /** Stops if running, then starts again on the same port with the same store dir; waits until ready. */
  restart(): Promise<void>;
  /** Crash: SIGKILL and wait for the process to exit. The store dir is left as the crash left it. */
  kill(): Promise<void>;
  /** Kills the server if running and removes its temporary directory (store dir included). Idempotent. */
  close(): Promise<void>;
}

const PATH_210_CACHE = [".cache", "nats-server-2.10", "usr", "sbin", "nats-server"];
const SETUP_HINT =
  "Run `npm test` once: its first step (`node scripts/setup.mjs`) installs the Debian package " +
  "`nats-server` (2.9.x) and caches nats-server 2.10.x from Debian trixie in .cache/nats-server-2.10/. " +
  "Or install a nats-server yourself (`apt-get install nats-server`) and point NATS_SERVER_BIN " +
  "(any version) or NATS_SERVER_210_BIN (2.10.x) at it.";

// ---------------------------------------------------------------------------
// Finding binaries

const versionCache = new Map<string, string | undefined>();

function isExecutableFile(path: string): boolean {
  try {
    if (!statSync(path).isFile()) return false;
    accessSync(path, fsConstants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** Runs `<bin> --version` (cached) and returns e.g. `2.9.10`, or undefined if it does not run. */
function binaryVersion(path: string): string | undefined {
  if (versionCache.has(path)) return versionCache.get(path);
  let version: string | undefined;
  if (isExecutableFile(path)) {
    try {
      const out = execFileSync(path, ["--version"], {
        encoding: "utf8",
        timeout: 10_000,
        stdio: ["ignore", "pipe", "pipe"],
      });
      version = /v?(\d+\.\d+\.\d+[^\s]*)/.exec(out)?.[1];
    } catch {
      version = undefined;
    }
  }
  versionCache.set(path, version);
  return version;
}

/** Every `nats-server` on PATH, then in the sbin dirs (often missing from non-root PATHs). */
function onPath(): string[] {
  const dirs = (process.env.PATH ?? "").split(delimiter).filter(Boolean);
  for (const extra of ["/usr/local/sbin", "/usr/sbin", "/sbin"]) if (!dirs.includes(extra)) dirs.push(extra);
  const found: string[] = [];
  for (const dir of dirs) {
    const p = join(dir, "nats-server");
    if (!found.includes(p) && isExecutableFile(p)) found.push(p);
  }
  return found;
}

interface Candidate {
  path: string;
  source: string;
}

function candidates(want: "2.9" | "2.10"): Candidate[] {
  const list: Candidate[] = [];
  const env = process.env.NATS_SERVER_BIN;
  const env210 = process.env.NATS_SERVER_210_BIN;
  if (want === "2.10") {
    if (env210) list.push({ path: env210, source: "NATS_SERVER_210_BIN" });
    const root = tryRepoRoot();
    if (root) list.push({ path: join(root, ...PATH_210_CACHE), source: "project cache" });
  }
  if (env) list.push({ path: env, source: "NATS_SERVER_BIN" });
  for (const p of onPath()) list.push({ path: p, source: "PATH" });
  return list;
}

function matches(version: string, want: "2.9" | "2.10"): boolean {
  return version.startsWith(`${want}.`);
}

interface Lookup {
  binary?: NatsBinary;
  tried: string[];
}

function lookup(want: NatsVersionWanted): Lookup {
  const tried: string[] = [];
  const probe = (c: Candidate, line?: "2.9" | "2.10"): NatsBinary | undefined => {
    const version = binaryVersion(c.path);
    if (version === undefined) {
      tried.push(`${c.source} ${c.path}: missing or does not run`);
      return undefined;
    }
    if (line && !matches(version, line)) {
      tried.push(`${c.source} ${c.path}: v${version}`);
      return undefined;
    }
    return { path: c.path, version, source: c.source };
  };

  if (want === "any") {
    const env = process.env.NATS_SERVER_BIN;
    if (env) {
      const b = probe({ path: env, source: "NATS_SERVER_BIN" });
      return b ? { binary: b, tried } : { tried };
    }
    for (const line of ["2.10", "2.9"] as const) {
      for (const c of candidates(line)) {
        const b = probe(c, line);
        if (b) return { binary: b, tried };
      }
    }
    for (const c of candidates("2.9")) {
      const b = probe(c);
      if (b) return { binary: b, tried };
    }
    return { tried: [...new Set(tried)] };
  }
  for (const c of candidates(want)) {
    const b = probe(c, want);
    if (b) return { binary: b, tried };
  }
  return { tried: [...new Set(tried)] };
}

/**
 * Finds a nats-server executable for the wanted line, checking its `--version`.
 *
 * Search order:
 * - `"2.10"`: `NATS_SERVER_210_BIN`, the project cache `.cache/nats-server-2.10/usr/sbin/nats-server`
 *   (under the repository root), `NATS_SERVER_BIN`, then `nats-server` on PATH (plus the sbin dirs);
 *   the first one reporting 2.10.x wins.
 * - `"2.9"`: `NATS_SERVER_BIN`, then PATH; the first one reporting 2.9.x wins.
 * - `"any"`: `NATS_SERVER_BIN` if set (whatever its version), else the 2.10 search, else the 2.9
 *   search, else any nats-server that runs.
 *
 * @returns the binary, or `undefined` when none fits
 */
export function findNatsServer(version: NatsVersionWanted = "any"): NatsBinary | undefined {
  return lookup(version).binary;
}

/**
 * Whether {@link startNats} can run the wanted server line. Synchronous (it runs
 * `nats-server --version` once per candidate and caches the answer), so it fits
 * `describe.skipIf(!hasNats("2.10"))`.
 */
export function hasNats(version: NatsVersionWanted = "any"): boolean {
  return findNatsServer(version) !== undefined;
}

/**
 * Why no server of the wanted line is available, with what to install; `undefined` when one is.
 * Useful as the message next to a skipped suite.
 */
export function natsMissingReason(version: NatsVersionWanted = "any"): string | undefined {
  const { binary, tried } = lookup(version);
  if (binary) return undefined;
  const what = version === "any" ? "nats-server" : `nats-server ${version}.x`;
  const triedText = tried.length ? ` (tried: ${tried.join("; ")})` : " (nothing found on PATH)";
  return `No ${what} binary found${triedText}. ${SETUP_HINT}`;
}

// ---------------------------------------------------------------------------
// Talking to a server

/**
 * Opens a raw TCP connection to a NATS server, reads its `INFO {...}` greeting and closes.
 *
 * @param port - the server's client port
 * @param opts - host (default `127.0.0.1`) and timeout (default 2 000 ms)
 * @throws the socket error (e.g. `ECONNREFUSED`) or a timeout / protocol error
 */
export function readNatsInfo(port: number, opts: { host?: string; timeoutMs?: number } = {}): Promise<NatsInfo> {
  const host = opts.host ?? "127.0.0.1";
  const timeoutMs = opts.timeoutMs ?? 2_000;
  return new Promise((resolve, reject) => {
    const socket = connect({ host, port });
    let buf = "";
    let settled = false;
    const finish = (err: Error | undefined, info?: NatsInfo): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      if (err) reject(err);
      else resolve(info as NatsInfo);
    };
    const timer = setTimeout(() => finish(new Error(`no INFO from ${host}:${port} within ${timeoutMs} ms`)), timeoutMs);
    socket.setEncoding("utf8");
    socket.on("error", (err) => finish(err));
    socket.on("close", () => finish(new Error(`connection to ${host}:${port} closed before INFO`)));
    socket.on("data", (chunk: string) => {
      buf += chunk;
      const end = buf.indexOf("\r\n");
      if (end < 0) {
        if (buf.length > 64 * 1024) finish(new Error("INFO line too long"));
        return;
      }
      const line = buf.slice(0, end);
      if (!line.startsWith("INFO ")) {
        finish(new Error(`expected INFO from ${host}:${port}, got ${JSON.stringify(line.slice(0, 80))}`));
        return;
      }
      try {
        const raw = JSON.parse(line.slice(5)) as Record<string, unknown>;
        finish(undefined, {
          version: String(raw.version ?? ""),
          jetstream: raw.jetstream === true,
          serverId: String(raw.server_id ?? ""),
          raw,
        });
      } catch (err) {
        finish(new Error(`malformed INFO from ${host}:${port}`, { cause: err }));
      }
    });
  });
}

// ---------------------------------------------------------------------------
// Running a server

const MAX_LOG_LINES = 400;

class NatsServer extends ServerProcess implements NatsServerHandle {
  readonly url: string;
  readonly version: string;

  constructor(
    readonly binary: NatsBinary,
    readonly port: number,
    baseDir: string,
    readonly storeDir: string,
    private readonly argv: (port: number) => string[],
    private readonly readyTimeoutMs: number,
  ) {
    super(baseDir, MAX_LOG_LINES, 10_000);
    this.url = `nats://127.0.0.1:${port}`;
    this.version = binary.version;
  }

  info(): Promise<NatsInfo> {
    return readNatsInfo(this.port);
  }

  /** Spawns the process and waits for "Server is ready" plus a JetStream-enabled INFO. */
  async launch(): Promise<void> {
    if (this.closed) throw new Error("nats-server handle is closed");
    if (this.running) throw new Error("nats-server is already running");
    const child = spawn(this.binary.path, this.argv(this.port), { stdio: ["ignore", "pipe", "pipe"] });
    this.adopt(child);
    let ready = false;
    let onReady: () => void = () => {};
    const readySeen = new Promise<void>((resolve) => {
      onReady = resolve;
    });
    const onOutput = (chunk: Buffer): void => {
      if (!ready && chunk.toString("utf8").includes("Server is ready")) {
        ready = true;
        onReady();
      }
    };
    for (const stream of [child.stdout, child.stderr]) stream?.on("data", onOutput);
    const spawnError = new Promise<never>((_, reject) => child.once("error", reject));
    const exitedEarly = this.exited.then(() => {
      throw this.logs().includes("address already in use")
        ? new AddressInUse(`port ${this.port} is in use`)
        : new Error(`nats-server exited before it was ready (code ${child.exitCode}, signal ${child.signalCode})`);
    });
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`nats-server not ready within ${this.readyTimeoutMs} ms`)),
        this.readyTimeoutMs,
      );
    });
    try {
      await Promise.race([readySeen, exitedEarly, spawnError, timeout]);
      const deadline = Date.now() + this.readyTimeoutMs;
      let last: NatsInfo | undefined;
      await Promise.race([
        waitFor(
          async () => {
            last = await readNatsInfo(this.port);
            return last.jetstream;
          },
          { timeoutMs: Math.max(1_000, deadline - Date.now()), intervalMs: 50, message: "JetStream enabled in INFO" },
        ),
        exitedEarly,
      ]);
      if (last && last.version !== this.version) {
        throw new Error(`nats-server reports version ${last.version}, expected ${this.version}`);
      }
    } catch (err) {
      if (this.running) {
        child.kill("SIGKILL");
        await this.exited;
      }
      if (err instanceof AddressInUse) throw err;
      throw new Error(
        `${(err as Error).message}\n  binary: ${this.binary.path} (v${this.version})\n  args: ${this.argv(this.port).join(" ")}\n  log:\n${this.logs()}`,
        { cause: err },
      );
    } finally {
      clearTimeout(timer);
      exitedEarly.catch(() => {});
      spawnError.catch(() => {});
    }
  }
}

/**
 * Starts a real `nats-server -js` bound to 127.0.0.1 on a free port with its own temporary
 * store directory, and waits until it logged "Server is ready" and its `INFO` greeting says
 * JetStream is enabled.
 *
 * The process runs as `nats-server -a 127.0.0.1 -p <port> -js -sd <storeDir>` (plus `-c <conf>`
 * when JetStream limits are given, plus `opts.args`). Every server is killed, and its temp
 * dir removed, when the test process exits or gets SIGINT/SIGTERM, even without `close()`.
 *
 * @example
 * ```ts
 * await using nats = await startNats({ version: "2.10" });
 * const nc = await connect({ servers: nats.url });
 * ```
 * @throws Error naming what to install when no suitable binary exists, or with the
 *   server log when it does not become ready
 */
export async function startNats(opts: StartNatsOptions = {}): Promise<NatsServerHandle> {
  const want = opts.version ?? "any";
  const { binary } = lookup(want);
  if (!binary) throw new Error(natsMissingReason(want));

  const baseDir = await mkdtemp(join(tmpdir(), "slipstream-nats-"));
  trackDir(baseDir);
  const storeDir = join(baseDir, "store");
  await mkdir(storeDir);
  const extra: string[] = [];
  const { maxMemory, maxFile } = opts.jetstream ?? {};
  if (maxMemory !== undefined || maxFile !== undefined) {
    const conf = join(baseDir, "nats.conf");
    // The store dir comes from -sd on the command line (repeating it here is an error).
    const lines: string[] = [];
    if (maxMemory !== undefined) lines.push(`  max_memory_store: ${Math.floor(maxMemory)}`);
    if (maxFile !== undefined) lines.push(`  max_file_store: ${Math.floor(maxFile)}`);
    await writeFile(conf, `jetstream {\n${lines.join("\n")}\n}\n`);
    extra.push("-c", conf);
  }
  const argv = (port: number): string[] => [
    ...extra,
    "-a",
    "127.0.0.1",
    "-p",
    String(port),
    "-js",
    "-sd",
    storeDir,
    ...(opts.args ?? []),
  ];

  const readyTimeoutMs = opts.readyTimeoutMs ?? 20_000;
  return launchWithRetry(
    baseDir,
    async () => new NatsServer(binary, await freePort(), baseDir, storeDir, argv, readyTimeoutMs),
  );
}
