/**
 * A minimal NATS operator-mode (JWT) setup for credential tests: an operator, a system
 * account, one JetStream-enabled account and users signed by it, as JWTs made here with
 * nkeys (no `nsc` needed). The server trusts exactly the accounts preloaded in its config.
 */
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { createAccount, createOperator, createUser, type KeyPair } from "@nats-io/nkeys";

export type { KeyPair } from "@nats-io/nkeys";

const b64u = (b: Uint8Array | string): string => Buffer.from(b).toString("base64url");
const UNLIMITED = { subs: -1, data: -1, payload: -1, imports: -1, exports: -1, wildcards: true, conn: -1, leaf: -1 };

function jwt(issuer: KeyPair, sub: string, name: string, nats: object): string {
  const header = b64u(JSON.stringify({ typ: "JWT", alg: "ed25519-nkey" }));
  const jti = Buffer.from(crypto.getRandomValues(new Uint8Array(20)))
    .toString("hex")
    .toUpperCase();
  const claims = { jti, iat: Math.floor(Date.now() / 1000), iss: issuer.getPublicKey(), name, sub, nats };
  const payload = b64u(JSON.stringify(claims));
  const sig = b64u(issuer.sign(new TextEncoder().encode(`${header}.${payload}`)));
  return `${header}.${payload}.${sig}`;
}

/** The text of a `.creds` file (user JWT + seed) for a new user of `account`. */
export function natsUserCreds(account: KeyPair): string {
  const user = createUser();
  const token = jwt(account, user.getPublicKey(), "user", {
    type: "user",
    version: 2,
    pub: {},
    sub: {},
    subs: -1,
    data: -1,
    payload: -1,
  });
  return [
    "-----BEGIN NATS USER JWT-----",
    token,
    "------END NATS USER JWT------",
    "",
    "-----BEGIN USER NKEY SEED-----",
    new TextDecoder().decode(user.getSeed()),
    "------END USER NKEY SEED------",
    "",
  ].join("\n");
}

/** Well-formed `.creds` text of a user signed by an account no server trusts. */
export function natsUntrustedCreds(): string {
  return natsUserCreds(createAccount());
}

/** What {@link natsOperatorConfig} wrote. */
export interface NatsOperatorSetup {
  /** The server config file: start the server with `startNats({ args: ["-c", conf] })`. */
  readonly conf: string;
  /** The JetStream-enabled account; sign users with {@link natsUserCreds}. */
  readonly account: KeyPair;
}

/** Writes an operator-mode server config (memory resolver, accounts preloaded) into `dir`. */
export async function natsOperatorConfig(dir: string): Promise<NatsOperatorSetup> {
  const op = createOperator();
  const sys = createAccount();
  const account = createAccount();
  const opJwt = jwt(op, op.getPublicKey(), "op", { type: "operator", version: 2 });
  const sysJwt = jwt(op, sys.getPublicKey(), "SYS", { type: "account", version: 2, limits: UNLIMITED });
  const accJwt = jwt(op, account.getPublicKey(), "app", {
    type: "account",
    version: 2,
    limits: { ...UNLIMITED, mem_storage: -1, disk_storage: -1, streams: -1, consumer: -1 },
  });
  const conf = join(dir, "operator.conf");
  await writeFile(
    conf,
    [
      `operator: "${opJwt}"`,
      `system_account: ${sys.getPublicKey()}`,
      "resolver: MEMORY",
      "resolver_preload: {",
      `  ${account.getPublicKey()}: "${accJwt}"`,
      `  ${sys.getPublicKey()}: "${sysJwt}"`,
      "}",
      "",
    ].join("\n"),
  );
  return { conf, account };
}
