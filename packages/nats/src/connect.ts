/**
 * The connection: dials NATS (or wraps a client the caller already has), tracks health from
 * the client's status events, vends buckets, and releases every consumer it created on
 * `close()`. Credentials never appear in `toString`, `toJSON` or `util.inspect` output.
 */
import { inspect } from "node:util";
import type { JetStreamClient, JetStreamManager } from "@nats-io/jetstream";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection as NatsClient, TlsOptions } from "@nats-io/nats-core";
import { connect as natsConnect } from "@nats-io/transport-node";
import {
  DEFAULT_TIMEOUT_MS,
  invalidArgument,
  type KvCapabilities,
  type Logger,
  type OpOptions,
  SlipstreamError,
  silentLogger,
  withTimeout,
} from "@slipstream/core";
import { getOrCreateStream, NatsKvStore, normalizeConfig, type StoreConfig } from "./bucket.js";
import { type BucketContext, ResourceRegistry } from "./context.js";
import { type AuthKind, resolveAuth } from "./credentials.js";
import { isAuthError, mapNatsError } from "./errors.js";

/** Default of {@link ConnectOptions.watchRecreateSpreadMs}. */
export const DEFAULT_WATCH_RECREATE_SPREAD_MS = 1000;

/** Validates {@link ConnectOptions.watchRecreateSpreadMs} (0 allowed). */
function spread(v: number | undefined): number {
  if (v === undefined) return DEFAULT_WATCH_RECREATE_SPREAD_MS;
  if (typeof v !== "number" || !Number.isFinite(v) || v < 0) {
    throw invalidArgument(`watchRecreateSpreadMs must be a finite number ≥ 0, got ${String(v)}`);
  }
  return v;
}

/** Default of {@link ConnectOptions.watchStallMs}. */
export const DEFAULT_WATCH_STALL_MS = 30_000;

/** Options of {@link connect}. */
export interface ConnectOptions {
  /** One or more server URLs (`nats://host:port`); userinfo (`nats://user:pass@…`) is used as credentials. */
  servers: string | string[];
  /** The text of a `.creds` file, or base64 of it. Highest priority. */
  creds?: string;
  /** Path of a `.creds` file. */
  credsFile?: string;
  user?: string;
  pass?: string;
  token?: string;
  /** TLS: `true` for the system CAs, or nats.js TLS options (cert/key/ca as files or text). */
  tls?: boolean | TlsOptions;
  /** Bound of every network await, connecting included. @defaultValue 30000 */
  timeoutMs?: number;
  /** Client name shown by the server. */
  name?: string;
  logger?: Logger;
  /** A watch waiting this long with neither a message nor a heartbeat fails with WATCH_FAILED. @defaultValue 30000 */
  watchStallMs?: number;
  /**
   * Herd control: after a lost connection, each watch waits a random 0..this many ms (full
   * jitter) before it re-creates its consumer, so a fleet (or many watches of one process)
   * that reconnects at once does not stampede the server. 0 re-creates at once.
   * @defaultValue 1000
   */
  watchRecreateSpreadMs?: number;
  /** Pause between reconnect attempts. @defaultValue 2000 */
  reconnectTimeWaitMs?: number;
  /** Reconnect attempts before the client gives up and closes; -1 = forever. @defaultValue -1 */
  maxReconnectAttempts?: number;
  signal?: AbortSignal;
}

/** Options of {@link NatsConnection.fromClient}. */
export interface FromClientOptions {
  timeoutMs?: number;
  logger?: Logger;
  watchStallMs?: number;
  /** See {@link ConnectOptions.watchRecreateSpreadMs}. @defaultValue 1000 */
  watchRecreateSpreadMs?: number;
}

/** What the NATS backend can do; `multiFilterWatch` depends on the connected server (≥ 2.10). */
export interface NatsCapabilities extends KvCapabilities {
  /** Version of the connected server, when known. */
  serverVersion: string | undefined;
}

function positive(v: number | undefined, name: string, dflt: number): number {
  if (v === undefined) return dflt;
  if (typeof v !== "number" || !Number.isFinite(v) || v <= 0)
    throw invalidArgument(`${name} must be a positive number, got ${String(v)}`);
  return v;
}

/** True when `version` ("2.10.27") is at least major.minor. */
export function versionAtLeast(version: string | undefined, major: number, minor: number): boolean {
  const m = /^v?(\d+)\.(\d+)/.exec(version ?? "");
  if (!m) return false;
  const [maj, min] = [Number(m[1]), Number(m[2])];
  return maj > major || (maj === major && min >= minor);
}

interface ConnectionInit {
  nc: NatsClient;
  owned: boolean;
  servers: string[];
  auth: AuthKind;
  name: string | undefined;
  timeoutMs: number;
  watchStallMs: number;
  watchRecreateSpreadMs: number;
  logger: Logger;
}

/**
 * A slipstream connection to NATS JetStream. Create with {@link connect} or
 * {@link NatsConnection.fromClient}; get buckets with {@link NatsConnection.store}.
 */
export class NatsConnection implements AsyncDisposable {
  readonly #nc: NatsClient;
  readonly #owned: boolean;
  readonly #servers: string[];
  readonly #auth: AuthKind;
  readonly #name: string | undefined;
  readonly #timeoutMs: number;
  readonly #watchStallMs: number;
  readonly #watchRecreateSpreadMs: number;
  readonly #logger: Logger;
  readonly #resources = new ResourceRegistry();
  readonly #js: JetStreamClient;
  #jsm: Promise<JetStreamManager> | undefined;
  #connected = true;
  #closed: Promise<void> | undefined;
  #status: { stop?: () => void } | undefined;

  private constructor(init: ConnectionInit) {
    this.#nc = init.nc;
    this.#owned = init.owned;
    this.#servers = init.servers;
    this.#auth = init.auth;
    this.#name = init.name;
    this.#timeoutMs = init.timeoutMs;
    this.#watchStallMs = init.watchStallMs;
    this.#watchRecreateSpreadMs = init.watchRecreateSpreadMs;
    this.#logger = init.logger;
    this.#js = jetstream(init.nc, { timeout: init.timeoutMs });
    void this.#trackHealth();
  }

  /** Dials NATS; see {@link connect}. */
  static async connect(opts: ConnectOptions): Promise<NatsConnection> {
    if (typeof opts !== "object" || opts === null) throw new TypeError("connect options must be an object");
    const timeoutMs = positive(opts.timeoutMs, "timeoutMs", DEFAULT_TIMEOUT_MS);
    const watchStallMs = positive(opts.watchStallMs, "watchStallMs", DEFAULT_WATCH_STALL_MS);
    const watchRecreateSpreadMs = spread(opts.watchRecreateSpreadMs);
    const reconnectTimeWait = positive(opts.reconnectTimeWaitMs, "reconnectTimeWaitMs", 2000);
    const maxReconnectAttempts = opts.maxReconnectAttempts ?? -1;
    if (!Number.isInteger(maxReconnectAttempts) || maxReconnectAttempts < -1) {
      throw invalidArgument(`maxReconnectAttempts must be an integer ≥ -1, got ${String(maxReconnectAttempts)}`);
    }
    const auth = await resolveAuth(opts);
    const tls = opts.tls === true ? {} : opts.tls === false || opts.tls === undefined ? undefined : opts.tls;
    const where = auth.servers.join(",");
    let nc: NatsClient;
    try {
      const dialing = natsConnect({
        servers: auth.servers,
        ...auth.options,
        ...(tls ? { tls } : {}),
        name: opts.name,
        timeout: timeoutMs,
        reconnectTimeWait,
        maxReconnectAttempts,
        // 0 means never reconnect. nats.js would still try once after a drop, and a drop
        // during the first handshake (a TLS 1.3 "certificate required" alert) then waits on
        // itself until the timeout instead of failing with the server's reason.
        ...(maxReconnectAttempts === 0 ? { reconnect: false } : {}),
      });
      try {
        nc = await withTimeout(`connecting to ${where}`, timeoutMs, opts.signal, () => dialing);
      } catch (err) {
        // Timed out or aborted: a dial that still succeeds later must not leak a connection.
        dialing.then((late) => late.close()).catch(() => {});
        throw err;
      }
    } catch (err) {
      if (SlipstreamError.is(err)) throw err;
      if (isAuthError(err)) {
        throw new SlipstreamError(
          "CONNECTION_FAILED",
          `connecting to ${where}: the server refused the ${auth.kind} credentials`,
          {
            cause: err,
          },
        );
      }
      const e = mapNatsError(err, `connecting to ${where}`);
      throw e.code === "BACKEND" ? new SlipstreamError("CONNECTION_FAILED", e.message, { cause: err }) : e;
    }
    return new NatsConnection({
      nc,
      owned: true,
      servers: auth.servers,
      auth: auth.kind,
      name: opts.name,
      timeoutMs,
      watchStallMs,
      watchRecreateSpreadMs,
      logger: opts.logger ?? silentLogger,
    });
  }

  /**
   * Wraps a nats.js connection the caller already has. `close()` then releases slipstream's
   * consumers but leaves the client open: its owner closes it.
   */
  static fromClient(nc: NatsClient, opts: FromClientOptions = {}): NatsConnection {
    if (typeof nc !== "object" || nc === null || typeof (nc as NatsClient).isClosed !== "function") {
      throw new TypeError("fromClient expects a nats.js NatsConnection");
    }
    if (nc.isClosed())
      throw new SlipstreamError("NOT_CONNECTED", "fromClient: the nats.js connection is already closed");
    const server = nc.getServer?.();
    return new NatsConnection({
      nc,
      owned: false,
      servers: server ? [server.replace(/^[^@/]*@/, "")] : [],
      // The caller's client carries its own credentials; we never see them.
      auth: "external",
      name: undefined,
      timeoutMs: positive(opts.timeoutMs, "timeoutMs", DEFAULT_TIMEOUT_MS),
      watchStallMs: positive(opts.watchStallMs, "watchStallMs", DEFAULT_WATCH_STALL_MS),
      watchRecreateSpreadMs: spread(opts.watchRecreateSpreadMs),
      logger: opts.logger ?? silentLogger,
    });
  }

  async #trackHealth(): Promise<void> {
    const nc = this.#nc;
    const onClosed = (): void => {
      this.#connected = false;
      if (this.#closed === undefined) this.#resources.clientClosed();
    };
    nc.closed().then(onClosed, onClosed);
    const status = nc.status();
    // nats.js returns a QueuedIterator; stop it on close so a borrowed client keeps no listener.
    this.#status = status as unknown as { stop?: () => void };
    try {
      for await (const s of status) {
        switch (s.type) {
          case "disconnect":
            this.#connected = false;
            this.#logger.warn("NATS disconnected", { server: s.server });
            this.#resources.disconnected();
            break;
          case "reconnect":
            this.#connected = true;
            this.#logger.info("NATS reconnected", { server: s.server });
            break;
          case "close":
            this.#connected = false;
            break;
          default:
            break;
        }
      }
    } catch {
      // status iterator ends with the connection
    }
  }

  /** The underlying nats.js connection. */
  get client(): NatsClient {
    return this.#nc;
  }

  /** True while connected to a server and not closed (follows the client's real state). */
  get isHealthy(): boolean {
    return this.#closed === undefined && this.#connected && !this.#nc.isClosed() && !this.#nc.isDraining();
  }

  /** The connected server's version, e.g. "2.10.27". */
  get serverVersion(): string | undefined {
    return this.#nc.info?.version;
  }

  /** What this backend supports; read from the connected server where it matters. */
  get capabilities(): NatsCapabilities {
    const serverVersion = this.serverVersion;
    return {
      cas: true,
      streamingWatch: true,
      prefixWatch: true,
      // Below 2.10 several prefixes share one consumer on the whole bucket, filtered client-side.
      multiFilterWatch: versionAtLeast(serverVersion, 2, 10),
      purge: true,
      ttl: false,
      globalOrdering: false,
      serverVersion,
    };
  }

  #jetstreamManager(signal?: AbortSignal): Promise<JetStreamManager> {
    if (!this.#jsm) {
      const p = withTimeout("opening JetStream", this.#timeoutMs, signal, async () => {
        try {
          return await jetstreamManager(this.#nc, { timeout: this.#timeoutMs });
        } catch (err) {
          throw mapNatsError(err, "opening JetStream (is the server running with -js?)");
        }
      });
      this.#jsm = p;
      p.catch(() => {
        if (this.#jsm === p) this.#jsm = undefined;
      });
    }
    return this.#jsm;
  }

  #checkOpen(what: string): void {
    if (this.#closed !== undefined) throw new SlipstreamError("NOT_CONNECTED", `${what}: the connection is closed`);
    if (this.#nc.isClosed()) throw new SlipstreamError("NOT_CONNECTED", `${what}: the NATS client is closed`);
  }

  /**
   * Gets or creates the bucket `config.name`. The rest of the config applies only when the
   * bucket is created here; an existing bucket is returned unchanged. With `create: false`
   * an absent bucket is refused with `INVALID_ARGUMENT` and nothing is created (for tools
   * that only look).
   */
  async store(config: StoreConfig, opts: OpOptions & { create?: boolean } = {}): Promise<NatsKvStore> {
    const cfg = normalizeConfig(config);
    this.#checkOpen(`store ${cfg.name}`);
    const jsm = await this.#jetstreamManager(opts.signal);
    const base = {
      bucket: cfg.name,
      stream: `KV_${cfg.name}`,
      jsm,
      timeoutMs: this.#timeoutMs,
      logger: this.#logger,
    };
    const info = await getOrCreateStream(base, cfg, opts.signal, opts.create !== false);
    const ctx: BucketContext = {
      ...base,
      subjectPrefix: `$KV.${cfg.name}.`,
      nc: this.#nc,
      js: this.#js,
      direct: info.config.allow_direct === true,
      watchStallMs: this.#watchStallMs,
      watchRecreateSpreadMs: this.#watchRecreateSpreadMs,
      resources: this.#resources,
      multiFilter: () => versionAtLeast(this.serverVersion, 2, 10),
      connected: () => this.#connected && !this.#nc.isClosed(),
    };
    return new NatsKvStore(ctx);
  }

  /**
   * Ends every watch and listing (deleting their consumers), then drains and closes the
   * client if this connection opened it. Idempotent.
   */
  close(): Promise<void> {
    this.#closed ??= this.#doClose();
    return this.#closed;
  }

  async #doClose(): Promise<void> {
    await this.#resources.releaseAll();
    this.#status?.stop?.();
    if (!this.#owned || this.#nc.isClosed()) return;
    try {
      await withTimeout("draining the NATS connection", this.#timeoutMs, undefined, () => this.#nc.drain());
    } catch (err) {
      this.#logger.warn("drain failed; closing", { error: String(err) });
      await this.#nc.close().catch(() => {});
    }
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  /** A description without credentials. */
  toString(): string {
    const name = this.#name ? `, name=${this.#name}` : "";
    return `NatsConnection(servers=${this.#servers.join(",")}, auth=${this.#auth}${name}, healthy=${this.isHealthy})`;
  }

  toJSON(): Record<string, unknown> {
    return { servers: [...this.#servers], auth: this.#auth, name: this.#name, healthy: this.isHealthy };
  }

  [inspect.custom](): string {
    return this.toString();
  }
}

/**
 * Dials NATS. Credential priority: `creds` (text or base64 of a .creds file) > `credsFile` >
 * `user`/`pass` (explicit, then a server URL's userinfo) > `token` (explicit, then URL) >
 * none. Failures: `CONNECTION_FAILED` (refused, unreachable, bad credentials), `TIMEOUT`,
 * `INVALID_ARGUMENT` (unusable options).
 */
export function connect(opts: ConnectOptions): Promise<NatsConnection> {
  return NatsConnection.connect(opts);
}
