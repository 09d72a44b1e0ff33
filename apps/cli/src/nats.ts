/**
 * NATS options shared by `diff` and `status`: server URL (or `NATS_URL`), credentials
 * (`--creds`, `--user/--password`, `--token`) and TLS (`--tls`, `--tls-ca`, `--tls-cert`, `--tls-key`).
 */
import { type ConnectOptions, connect, type NatsConnection, type NatsKvStore } from "@slipstream/nats";
import { SlipstreamError } from "@slipstream/core";
import type { Command } from "commander";
import { CliError, EXIT, usage } from "./exit.js";

/** The parsed NATS options of a command. */
export interface NatsFlags {
  nats?: string;
  bucket?: string;
  creds?: string;
  user?: string;
  password?: string;
  token?: string;
  tls?: boolean;
  tlsCa?: string;
  tlsCert?: string;
  tlsKey?: string;
}

/** Adds the NATS options to `cmd`. */
export function natsOptions(cmd: Command): Command {
  return cmd
    .option("--nats <url>", "NATS server URL(s), comma-separated (default: $NATS_URL)")
    .option("--bucket <name>", "the KV bucket")
    .option("--creds <file>", "NATS credentials (.creds) file")
    .option("--user <user>", "NATS user")
    .option("--password <password>", "NATS password")
    .option("--token <token>", "NATS token")
    .option("--tls", "use TLS with the system CAs")
    .option("--tls-ca <file>", "CA certificate(s) to trust (PEM)")
    .option("--tls-cert <file>", "client certificate (PEM)")
    .option("--tls-key <file>", "client key (PEM)");
}

/** Connects and opens the bucket without creating it. The caller closes the connection. */
export async function openBucket(
  flags: NatsFlags,
  env: Readonly<Record<string, string | undefined>>,
  timeoutMs: number,
  signal: AbortSignal | undefined,
): Promise<{ conn: NatsConnection; bucket: NatsKvStore; server: string }> {
  const servers = flags.nats ?? env.NATS_URL;
  if (!servers) throw usage("no NATS server: pass --nats nats://host:4222 or set NATS_URL");
  if (!flags.bucket) throw usage("--bucket <name> is required");
  const tlsFiles = flags.tlsCa || flags.tlsCert || flags.tlsKey;
  const opts: ConnectOptions = {
    servers: servers
      .split(",")
      .map((s) => s.trim())
      .filter((s) => s !== ""),
    timeoutMs,
    name: "slipstream-cli",
    // An operator tool fails fast instead of waiting for a server to come back.
    maxReconnectAttempts: 0,
    ...(flags.creds ? { credsFile: flags.creds } : {}),
    ...(flags.user ? { user: flags.user } : {}),
    ...(flags.password ? { pass: flags.password } : {}),
    ...(flags.token ? { token: flags.token } : {}),
    ...(tlsFiles
      ? {
          tls: {
            ...(flags.tlsCa ? { caFile: flags.tlsCa } : {}),
            ...(flags.tlsCert ? { certFile: flags.tlsCert } : {}),
            ...(flags.tlsKey ? { keyFile: flags.tlsKey } : {}),
          },
        }
      : flags.tls
        ? { tls: true }
        : {}),
    ...(signal ? { signal } : {}),
  };
  const conn = await connect(opts);
  try {
    const bucket = await conn.store({ name: flags.bucket }, { create: false, ...(signal ? { signal } : {}) });
    return { conn, bucket, server: opts.servers.toString() };
  } catch (err) {
    await conn.close().catch(() => {});
    if (SlipstreamError.is(err, "INVALID_ARGUMENT") && /does not exist/.test(err.message)) {
      throw new CliError(EXIT.INPUT, "NOT_FOUND", err.message, { cause: err });
    }
    throw err;
  }
}
