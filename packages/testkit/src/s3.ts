import { type ChildProcess, spawn } from "node:child_process";
import { mkdir, mkdtemp } from "node:fs/promises";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { trackDir } from "./cleanup.js";
import { adoptChild, removeBaseDir, ServerProcess } from "./process.js";

const MAX_LOG_LINES = 200;

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

class S3rverServer extends ServerProcess implements S3rverHandle {
  readonly endpoint: string;

  constructor(
    child: ChildProcess,
    readonly port: number,
    readonly bucket: string,
    readonly directory: string,
    baseDir: string,
  ) {
    super(baseDir, MAX_LOG_LINES, 5_000);
    this.adopt(child, false);
    this.endpoint = `http://127.0.0.1:${port}`;
  }

  /** The child binds its port only when spawned; a new process is a new handle ({@link startS3rver}). */
  launch(): Promise<void> {
    return Promise.reject(new Error("an s3rver handle cannot be relaunched; start a new one"));
  }

  /** Records the child's stderr (it was read before this handle existed). */
  log(text: string): void {
    this.appendLog(text);
  }

  client(): S3ClientConfigLike {
    return {
      region: "us-east-1",
      endpoint: this.endpoint,
      forcePathStyle: true,
      credentials: { ...S3RVER_CREDENTIALS },
    };
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
  adoptChild(child);
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
    const server = new S3rverServer(child, port, bucket, directory, baseDir);
    server.log(stderr);
    child.stderr?.on("data", (chunk: Buffer) => server.log(chunk.toString("utf8")));
    return server;
  } catch (err) {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    await removeBaseDir(baseDir);
    throw new Error(`${(err as Error).message}\n  log:\n${stderr}`, { cause: err });
  } finally {
    clearTimeout(timer);
  }
}
