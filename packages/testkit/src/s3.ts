import { type ChildProcess, spawn } from "node:child_process";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { trackChild, trackDir, untrackDir } from "./cleanup.js";

/** Options for {@link startS3rver}. */
export interface StartS3rverOptions {
  /** The bucket created before the server accepts requests (default `slipstream-test`). */
  bucket?: string;
  /** Loopback port to bind (default: a free port chosen by the OS when the server binds). */
  port?: number;
  /** How long to wait for the server to listen (default 20 000 ms). */
  readyTimeoutMs?: number;
}

/**
 * Plain S3 client configuration for a test server: hand it to `new S3Client(...)`. Kept free
 * of AWS SDK types so the test kit does not depend on the SDK.
 */
export interface S3ClientConfigLike {
  region: string;
  endpoint: string;
  forcePathStyle: true;
  credentials: { accessKeyId: string; secretAccessKey: string };
}

/** A running (or stopped) s3rver in a child process, owned by one test. */
export interface S3rverHandle extends AsyncDisposable {
  /** `http://127.0.0.1:<port>`. */
  readonly endpoint: string;
  /** Loopback TCP port the server listens on. */
  readonly port: number;
  /** The bucket that exists from the start. */
  readonly bucket: string;
  /** Where s3rver keeps its objects (removed by `close()`). */
  readonly directory: string;
  /** Whether the server process is currently alive. */
  readonly running: boolean;
  /** OS process id of the server process, if running. */
  readonly pid: number | undefined;
  /** Client configuration for this server (path-style addressing, s3rver's fixed credentials). */
  client(): S3ClientConfigLike;
  /** The server's stderr so far (for failure messages). */
  logs(): string;
  /** Graceful shutdown: SIGTERM, then waits for the process to exit (SIGKILL after 5 s). Keeps the directory. */
  stop(): Promise<void>;
  /** Crash: SIGKILL and wait for the process to exit. */
  kill(): Promise<void>;
  /** Kills the server if running and removes its temporary directory. Idempotent. */
  close(): Promise<void>;
}

/** s3rver's fixed credentials (it checks signatures against these). */
const S3RVER_CREDENTIALS = { accessKeyId: "S3RVER", secretAccessKey: "S3RVER" } as const;

// The child: a CommonJS script run with `node -e`, so the launcher needs no file of its own.
// It prints one JSON line once listening, exits on SIGTERM after closing the server, and
// exits when its stdin closes: a parent that dies (even by SIGKILL) takes the server along.
const CHILD = `
const cfg = JSON.parse(process.argv[1]);
const S3rver = require(cfg.module);
const server = new S3rver({
  address: "127.0.0.1",
  port: cfg.port,
  directory: cfg.directory,
  silent: true,
  configureBuckets: [{ name: cfg.bucket }],
});
let closing = false;
const shutdown = () => {
  if (closing) return;
  closing = true;
  server.close().then(() => process.exit(0), () => process.exit(0));
  setTimeout(() => process.exit(0), 2000).unref();
};
process.on("SIGTERM", shutdown);
process.stdin.on("end", shutdown);
process.stdin.on("close", shutdown);
process.stdin.resume();
server.run().then(
  (addr) => process.stdout.write(JSON.stringify({ ready: true, port: addr.port }) + "\\n"),
  (err) => {
    process.stderr.write(String(err && err.stack || err) + "\\n");
    process.exit(3);
  },
);
`;

class S3rverServer implements S3rverHandle {
  readonly endpoint: string;
  private closed = false;
  private readonly exited: Promise<void>;

  constructor(
    private readonly child: ChildProcess,
    readonly port: number,
    readonly bucket: string,
    readonly directory: string,
    private readonly baseDir: string,
    private readonly stderr: () => string,
  ) {
    this.endpoint = `http://127.0.0.1:${port}`;
    this.exited = new Promise<void>((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) resolve();
      else child.once("exit", () => resolve());
    });
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  get pid(): number | undefined {
    return this.running ? this.child.pid : undefined;
  }

  client(): S3ClientConfigLike {
    return {
      region: "us-east-1",
      endpoint: this.endpoint,
      forcePathStyle: true,
      credentials: { ...S3RVER_CREDENTIALS },
    };
  }

  logs(): string {
    return this.stderr();
  }

  private async signalAndWait(signal: NodeJS.Signals, graceMs: number): Promise<void> {
    if (!this.running) return;
    this.child.kill(signal);
    // A ref'd timer: it keeps the process alive while we wait (the child itself is unref'd).
    let timer: NodeJS.Timeout | undefined;
    const done = await Promise.race([
      this.exited.then(() => true),
      new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(false), graceMs);
      }),
    ]);
    clearTimeout(timer);
    if (!done && this.running) {
      this.child.kill("SIGKILL");
      await this.exited;
    }
  }

  stop(): Promise<void> {
    return this.signalAndWait("SIGTERM", 5_000);
  }

  kill(): Promise<void> {
    return this.signalAndWait("SIGKILL", 5_000);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.kill();
    await rm(this.baseDir, { recursive: true, force: true, maxRetries: 3 });
    untrackDir(this.baseDir);
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/**
 * Starts s3rver (a small S3-compatible server) in a child process of this Node binary,
 * bound to 127.0.0.1, storing objects in a fresh temporary directory, with one bucket
 * created before it accepts requests. Like every test kit server it is killed, and its
 * directory removed, when the test process exits (even without `close()`).
 *
 * s3rver's quirks: it does not enforce `If-None-Match` / `If-Match` on PUT, concatenates
 * multipart uploads into plain objects (ETags without the `-N` suffix), and lists slightly
 * differently from AWS S3.
 *
 * @example
 * ```ts
 * await using s3 = await startS3rver();
 * const client = new S3Client(s3.client());
 * ```
 * @throws Error with the server's stderr when it does not start
 */
export async function startS3rver(opts: StartS3rverOptions = {}): Promise<S3rverHandle> {
  const bucket = opts.bucket ?? "slipstream-test";
  const readyTimeoutMs = opts.readyTimeoutMs ?? 20_000;
  const baseDir = await mkdtemp(join(tmpdir(), "slipstream-s3rver-"));
  trackDir(baseDir);
  const directory = join(baseDir, "data");
  await mkdir(directory);
  const module = createRequire(import.meta.url).resolve("s3rver");
  const cfg = { module, port: opts.port ?? 0, directory, bucket };
  const child = spawn(process.execPath, ["-e", CHILD, JSON.stringify(cfg)], {
    stdio: ["pipe", "pipe", "pipe"],
  });
  trackChild(child);
  // Never keep the test process alive for a forgotten server; the exit hook kills it.
  child.unref();
  for (const stream of [child.stdin, child.stdout, child.stderr]) {
    (stream as unknown as { unref?: () => void } | null)?.unref?.();
  }
  let stderr = "";
  child.stderr?.on("data", (chunk: Buffer) => {
    stderr = (stderr + chunk.toString("utf8")).slice(-16_384);
  });
  let timer: NodeJS.Timeout | undefined;
  try {
    const port = await new Promise<number>((resolve, reject) => {
      let out = "";
      child.stdout?.on("data", (chunk: Buffer) => {
        out += chunk.toString("utf8");
        const line = out.split("\n").find((l) => l.startsWith("{"));
        if (!line) return;
        try {
          const msg = JSON.parse(line) as { ready?: boolean; port?: number };
          if (msg.ready && typeof msg.port === "number") resolve(msg.port);
        } catch (err) {
          reject(err);
        }
      });
      child.once("error", reject);
      child.once("exit", (code, signal) =>
        reject(new Error(`s3rver exited before it was ready (code ${code}, signal ${signal})`)),
      );
      timer = setTimeout(() => reject(new Error(`s3rver not ready within ${readyTimeoutMs} ms`)), readyTimeoutMs);
    });
    return new S3rverServer(child, port, bucket, directory, baseDir, () => stderr);
  } catch (err) {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    await rm(baseDir, { recursive: true, force: true, maxRetries: 3 });
    untrackDir(baseDir);
    throw new Error(`${(err as Error).message}\n  log:\n${stderr}`, { cause: err });
  } finally {
    clearTimeout(timer);
  }
}
