/**
 * NATS options shared by `diff` and `status`: server URL (or `NATS_URL`), credentials
 * (`--creds`, `--user/--password`, `--token`) and TLS (`--tls`, `--tls-ca`, `--tls-cert`, `--tls-key`).
 */
import { readFile, stat } from "node:fs/promises";
import { SlipstreamError } from "@slipstream/core";
import { type ConnectOptions, connect, type NatsConnection, type NatsKvStore } from "@slipstream/nats";
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
    .option("--creds <file>", "NATS credentials (.creds) file: user JWT + nkey seed (operator/JWT mode)")
    .option("--user <user>", "NATS user")
    .option("--password <password>", "NATS password")
    .option("--token <token>", "NATS token")
    .option("--tls", "use TLS with the system CAs")
    .option("--tls-ca <file>", "CA certificate(s) to trust (PEM)")
    .option("--tls-cert <file>", "client certificate (PEM)")
    .option("--tls-key <file>", "client key (PEM)");
}

/** The most bytes read from a `--creds` file (a real one is about 1 KiB). */
const MAX_CREDS_BYTES = 64 * 1024;

/**
 * Reads a `--creds` file. It is input, so a missing file or one that is not a `.creds` file
 * is exit 3, naming the file but never echoing its content (it holds a secret seed).
 */
async function readCredsFile(path: string): Promise<string> {
  let text: string;
  try {
    const st = await stat(path);
    if (!st.isFile() || st.size > MAX_CREDS_BYTES) {
      throw new CliError(EXIT.INPUT, "INVALID_CREDS", `${path} is not a NATS .creds file (not a small regular file)`);
    }
    text = await readFile(path, "utf8");
  } catch (err) {
    if (err instanceof CliError) throw err;
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "ENOENT")
      throw new CliError(EXIT.INPUT, "NOT_FOUND", `creds file ${path} does not exist`, { cause: err });
    throw new CliError(
      EXIT.INPUT,
      "INVALID_CREDS",
      `cannot read creds file ${path}: ${code ?? (err as Error).message}`,
      {
        cause: err,
      },
    );
  }
  if (!text.includes("-----BEGIN NATS USER JWT-----") || !text.includes("USER NKEY SEED")) {
    throw new CliError(
      EXIT.INPUT,
      "INVALID_CREDS",
      `${path} is not a NATS .creds file (expected a "BEGIN NATS USER JWT" block and a "USER NKEY SEED" block, as nsc writes)`,
    );
  }
  return text;
}

/** Server URLs for messages: userinfo (a password or token) replaced by `***`. */
function redacted(servers: readonly string[]): string {
  return servers
    .map((s) => s.replace(/^([a-z][a-z0-9+.-]*:\/\/)?[^@/]*@/i, (_m, scheme?: string) => `${scheme ?? ""}***@`))
    .join(",");
}

/**
 * A connection failure the server's authorization caused, rewritten to say which
 * credential was refused (or that one is needed); anything else is returned unchanged.
 * Still `CONNECTION_FAILED`, exit 4.
 */
function explainAuthFailure(err: unknown, flags: NatsFlags, servers: readonly string[]): unknown {
  if (!SlipstreamError.is(err, "CONNECTION_FAILED")) return err;
  const cause = (err as { cause?: unknown }).cause;
  const causeText = cause instanceof Error ? `${cause.name} ${cause.message}` : "";
  if (!/refused the .*credentials/.test(err.message) && !/authoriz|authenticat/i.test(causeText)) return err;
  const where = redacted(servers);
  const inUrl = servers.some((s) => /^([a-z][a-z0-9+.-]*:\/\/)?[^@/]+@/i.test(s));
  const which = flags.creds
    ? `the credentials of --creds ${flags.creds}`
    : flags.user
      ? `the credentials of --user/--password (user ${JSON.stringify(flags.user)})`
      : inUrl
        ? "the credentials in the server URL"
        : flags.token
          ? "the credentials of --token"
          : undefined;
  const message = which
    ? `connecting to ${where}: the server refused ${which} (wrong, expired or of an account it does not trust)`
    : `connecting to ${where}: the server requires credentials: pass --creds <file>, --user/--password or --token`;
  return new CliError(EXIT.UNAVAILABLE, "CONNECTION_FAILED", message, { cause: err });
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
  const list = servers
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s !== "");
  const opts: ConnectOptions = {
    servers: list,
    timeoutMs,
    name: "slipstream-cli",
    // An operator tool fails fast instead of waiting for a server to come back.
    maxReconnectAttempts: 0,
    // Read here rather than by the client, so a bad file is named in a clear input error.
    ...(flags.creds ? { creds: await readCredsFile(flags.creds) } : {}),
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
  let conn: NatsConnection;
  try {
    conn = await connect(opts);
  } catch (err) {
    throw explainAuthFailure(err, flags, list);
  }
  try {
    const bucket = await conn.store({ name: flags.bucket }, { create: false, ...(signal ? { signal } : {}) });
    return { conn, bucket, server: redacted(list) };
  } catch (err) {
    await conn.close().catch(() => {});
    if (SlipstreamError.is(err, "INVALID_ARGUMENT") && /does not exist/.test(err.message)) {
      throw new CliError(EXIT.INPUT, "NOT_FOUND", err.message, { cause: err });
    }
    throw err;
  }
}
