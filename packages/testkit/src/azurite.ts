import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { mkdir, mkdtemp } from "node:fs/promises";
import { request } from "node:http";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { trackDir } from "./cleanup.js";
import { freePort } from "./port.js";
import { AddressInUse, launchWithRetry, ServerProcess } from "./process.js";
import { waitFor } from "./wait.js";

/** The well-known development account every Azurite instance serves. */
export const AZURITE_ACCOUNT_NAME = "devstoreaccount1";
/** The published key of {@link AZURITE_ACCOUNT_NAME} (a constant of the emulator, not a secret). */
export const AZURITE_ACCOUNT_KEY =
  "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/** Options for {@link startAzurite}. */
export interface StartAzuriteOptions {
  /**
   * Keep blobs in memory instead of a temporary directory (`--inMemoryPersistence`). Data
   * then does not survive {@link AzuriteHandle.restart} or {@link AzuriteHandle.kill}.
   * @defaultValue false
   */
  inMemory?: boolean;
  /** With `inMemory`: the most megabytes of blob content Azurite may hold (`--extentMemoryLimit`). */
  extentMemoryLimitMb?: number;
  /** Extra command-line arguments appended after the test kit's own. */
  args?: string[];
  /** How long to wait for the blob endpoint to answer HTTP. @defaultValue 30 000 */
  readyTimeoutMs?: number;
}

/** A running (or stopped) Azurite blob server, owned by one test. */
export interface AzuriteHandle extends AsyncDisposable {
  /** A connection string for the development account on this server (plain HTTP). */
  readonly connectionString: string;
  /** The account's blob endpoint, `http://127.0.0.1:<port>/devstoreaccount1`. */
  readonly blobEndpoint: string;
  /** Loopback TCP port; stays the same across {@link AzuriteHandle.restart}. */
  readonly port: number;
  /** The account name ({@link AZURITE_ACCOUNT_NAME}). */
  readonly accountName: string;
  /** The account key ({@link AZURITE_ACCOUNT_KEY}). */
  readonly accountKey: string;
  /** Where blobs are persisted (kept across restarts, removed by `close()`); undefined in memory. */
  readonly location: string | undefined;
  /** Whether the server process is currently alive. */
  readonly running: boolean;
  /** OS process id of the current server process, if running. */
  readonly pid: number | undefined;
  /** The server's recent output, for failure messages. */
  logs(): string;
  /** Graceful shutdown: SIGTERM (Azurite saves its metadata), SIGKILL after 10 s. */
  stop(): Promise<void>;
  /** Stops if running, then starts again on the same port and location; waits until it answers. */
  restart(): Promise<void>;
  /** Crash: SIGKILL and wait for the process to exit. The location is left as the crash left it. */
  kill(): Promise<void>;
  /** Kills the server if running and removes its temporary directory. Idempotent. */
  close(): Promise<void>;
}

const MAX_LOG_LINES = 200;

/** The `azurite-blob` entry of the test kit's own `azurite` dependency. */
function azuriteBlobEntry(): string {
  const require = createRequire(import.meta.url);
  const pkgPath = require.resolve("azurite/package.json");
  const pkg = JSON.parse(readFileSync(pkgPath, "utf8")) as { bin?: Record<string, string> };
  const bin = pkg.bin?.["azurite-blob"];
  if (!bin) throw new Error(`the azurite package at ${dirname(pkgPath)} has no azurite-blob bin`);
  return join(dirname(pkgPath), bin);
}

/** Resolves true when `port` answers an HTTP request (any status: Azurite says 403 to anonymous calls). */
function answersHttp(port: number, timeoutMs = 1_000): Promise<boolean> {
  return new Promise((resolve) => {
    const req = request(
      { host: "127.0.0.1", port, path: `/${AZURITE_ACCOUNT_NAME}?comp=list`, method: "GET", timeout: timeoutMs },
      (res) => {
        res.resume();
        resolve(typeof res.statusCode === "number");
      },
    );
    req.on("timeout", () => req.destroy(new Error("timeout")));
    req.on("error", () => resolve(false));
    req.end();
  });
}

class AzuriteServer extends ServerProcess implements AzuriteHandle {
  readonly connectionString: string;
  readonly blobEndpoint: string;
  readonly accountName = AZURITE_ACCOUNT_NAME;
  readonly accountKey = AZURITE_ACCOUNT_KEY;

  constructor(
    readonly port: number,
    baseDir: string,
    readonly location: string | undefined,
    private readonly argv: string[],
    private readonly readyTimeoutMs: number,
  ) {
    super(baseDir, MAX_LOG_LINES, 10_000);
    this.blobEndpoint = `http://127.0.0.1:${port}/${AZURITE_ACCOUNT_NAME}`;
    this.connectionString =
      `DefaultEndpointsProtocol=http;AccountName=${AZURITE_ACCOUNT_NAME};` +
      `AccountKey=${AZURITE_ACCOUNT_KEY};BlobEndpoint=${this.blobEndpoint};`;
  }

  /** Spawns the process and waits until the blob endpoint answers HTTP. */
  async launch(): Promise<void> {
    if (this.closed) throw new Error("azurite handle is closed");
    if (this.running) throw new Error("azurite is already running");
    // cwd: whatever Azurite writes beside its location stays in our temp dir.
    const child = spawn(process.execPath, this.argv, { cwd: this.baseDir, stdio: ["ignore", "pipe", "pipe"] });
    this.adopt(child);
    const spawnError = new Promise<never>((_, reject) => child.once("error", reject));
    const exitedEarly = this.exited.then(() => {
      throw this.logs().includes("EADDRINUSE")
        ? new AddressInUse(`port ${this.port} is in use`)
        : new Error(`azurite exited before it was ready (code ${child.exitCode}, signal ${child.signalCode})`);
    });
    try {
      await Promise.race([
        waitFor(() => answersHttp(this.port), {
          timeoutMs: this.readyTimeoutMs,
          intervalMs: 50,
          message: `azurite blob endpoint on port ${this.port} answers HTTP`,
        }),
        exitedEarly,
        spawnError,
      ]);
    } catch (err) {
      if (this.running) {
        child.kill("SIGKILL");
        await this.exited;
      }
      if (err instanceof AddressInUse) throw err;
      throw new Error(`${(err as Error).message}\n  args: ${this.argv.join(" ")}\n  log:\n${this.logs()}`, {
        cause: err,
      });
    } finally {
      exitedEarly.catch(() => {});
      spawnError.catch(() => {});
    }
  }
}

/**
 * Starts Azurite's blob server (the `azurite` package the test kit depends on, run with this
 * Node) bound to 127.0.0.1 on a free port, persisting to its own temporary directory (or in
 * memory), and waits until the endpoint answers HTTP.
 *
 * The process runs `azurite-blob --blobHost 127.0.0.1 --blobPort <port> --location <dir>
 * --skipApiVersionCheck --loose --silent --disableTelemetry` (`--inMemoryPersistence` instead of
 * `--location` when asked, plus `opts.args`). Every server is killed, and its temp dir removed,
 * when the test process exits or gets SIGINT/SIGTERM, even without `close()`.
 *
 * Azurite saves its blob index a few seconds after a write and on SIGTERM: after
 * {@link AzuriteHandle.kill} the most recent writes may be gone, never half there.
 *
 * @example
 * ```ts
 * await using azurite = await startAzurite();
 * const service = BlobServiceClient.fromConnectionString(azurite.connectionString);
 * ```
 * @throws Error with the server's output when it does not become ready
 */
export async function startAzurite(opts: StartAzuriteOptions = {}): Promise<AzuriteHandle> {
  const entry = azuriteBlobEntry();
  const baseDir = await mkdtemp(join(tmpdir(), "slipstream-azurite-"));
  trackDir(baseDir);
  const location = opts.inMemory ? undefined : join(baseDir, "data");
  if (location) await mkdir(location);
  const storage = location
    ? ["--location", location]
    : [
        "--inMemoryPersistence",
        ...(opts.extentMemoryLimitMb === undefined ? [] : ["--extentMemoryLimit", String(opts.extentMemoryLimitMb)]),
      ];
  const readyTimeoutMs = opts.readyTimeoutMs ?? 30_000;
  return launchWithRetry(baseDir, async () => {
    const port = await freePort();
    const argv = [
      entry,
      "--blobHost",
      "127.0.0.1",
      "--blobPort",
      String(port),
      ...storage,
      "--skipApiVersionCheck",
      "--loose",
      "--silent",
      "--disableTelemetry",
      ...(opts.args ?? []),
    ];
    return new AzuriteServer(port, baseDir, location, argv, readyTimeoutMs);
  });
}
