/**
 * Resolves connection credentials with a fixed priority and keeps secrets out of logs:
 * creds (the text of a `.creds` file, or its base64) > credsFile > user/pass (explicit, else
 * from a server URL's userinfo) > token (explicit, else a URL's lone userinfo) > none.
 * Server URLs are stripped of userinfo before they reach the client or any message.
 */
import { readFile } from "node:fs/promises";
import type { Authenticator } from "@nats-io/nats-core";
import { credsAuthenticator } from "@nats-io/nats-core";
import { invalidArgument, SlipstreamError } from "@slipstream/core";

/** The kinds of authentication, as reported (never the secrets themselves). */
export type AuthKind = "creds" | "credsFile" | "user/pass" | "token" | "none" | "external";

/** What {@link resolveAuth} reads. */
export interface AuthInput {
  servers: string | string[];
  creds?: string;
  credsFile?: string;
  user?: string;
  pass?: string;
  token?: string;
}

/** The client-facing result: URLs without userinfo plus the auth options for nats.js. */
export interface ResolvedAuth {
  servers: string[];
  kind: AuthKind;
  options: { authenticator?: Authenticator; user?: string; pass?: string; token?: string };
}

const CREDS_MARKER = "-----BEGIN NATS USER JWT-----";
const SEED_MARKER = "USER NKEY SEED";

interface ParsedServer {
  url: string;
  user?: string;
  pass?: string;
}

/** Parses one server URL, splitting off userinfo. Never echoes the secret part in errors. */
export function parseServer(server: string): ParsedServer {
  if (typeof server !== "string" || server.trim() === "")
    throw invalidArgument("server URL must be a non-empty string");
  const s = server.trim();
  const hasScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(s);
  let u: URL;
  try {
    u = new URL(hasScheme ? s : `nats://${s}`);
  } catch (err) {
    throw invalidArgument(`invalid server URL ${JSON.stringify(redactUrl(s))}`, err);
  }
  const out: ParsedServer = { url: `${u.protocol}//${u.host}` };
  if (u.username) out.user = decodeURIComponent(u.username);
  if (u.password) out.pass = decodeURIComponent(u.password);
  return out;
}

/** A URL with any userinfo replaced by `***` (for messages). */
export function redactUrl(url: string): string {
  return url.replace(/^([a-z][a-z0-9+.-]*:\/\/)?[^@/]*@/i, (_m, scheme: string | undefined) => `${scheme ?? ""}***@`);
}

/** Decodes the `creds` option: `.creds` text as is, or base64 of it. */
export function decodeCreds(creds: string): Uint8Array {
  if (creds.includes(CREDS_MARKER)) return new TextEncoder().encode(creds);
  const compact = creds.replace(/\s+/g, "");
  if (compact.length > 0 && /^[A-Za-z0-9+/=_-]+$/.test(compact)) {
    const text = Buffer.from(compact, compact.includes("-") || compact.includes("_") ? "base64url" : "base64").toString(
      "utf8",
    );
    if (text.includes(CREDS_MARKER) && text.includes(SEED_MARKER)) return new TextEncoder().encode(text);
  }
  throw invalidArgument("creds is neither the text of a .creds file nor base64 of one");
}

/** Applies the credential priority. Reads `credsFile` when it is the chosen source. */
export async function resolveAuth(input: AuthInput): Promise<ResolvedAuth> {
  const list = Array.isArray(input.servers) ? input.servers : [input.servers];
  if (list.length === 0) throw invalidArgument("servers must name at least one server");
  const parsed = list.map(parseServer);
  const servers = parsed.map((p) => p.url);
  const urlUserPass = parsed.find((p) => p.user !== undefined && p.pass !== undefined);
  const urlToken = parsed.find((p) => p.user !== undefined && p.pass === undefined);

  if (input.creds !== undefined && input.creds !== "") {
    return { servers, kind: "creds", options: { authenticator: credsAuthenticator(decodeCreds(input.creds)) } };
  }
  if (input.credsFile !== undefined && input.credsFile !== "") {
    let text: string;
    try {
      text = await readFile(input.credsFile, "utf8");
    } catch (err) {
      throw new SlipstreamError(
        "INVALID_ARGUMENT",
        `cannot read credsFile: ${(err as NodeJS.ErrnoException).code ?? "error"}`,
        {
          cause: err,
        },
      );
    }
    return { servers, kind: "credsFile", options: { authenticator: credsAuthenticator(decodeCreds(text)) } };
  }
  if (input.user !== undefined && input.user !== "") {
    return { servers, kind: "user/pass", options: { user: input.user, pass: input.pass ?? "" } };
  }
  if (urlUserPass) {
    return { servers, kind: "user/pass", options: { user: urlUserPass.user, pass: urlUserPass.pass } };
  }
  if (input.token !== undefined && input.token !== "") {
    return { servers, kind: "token", options: { token: input.token } };
  }
  if (urlToken) return { servers, kind: "token", options: { token: urlToken.user } };
  return { servers, kind: "none", options: {} };
}
