/**
 * `status` and `diff` against real nats-servers that require credentials: operator/JWT mode
 * with a `.creds` file, user/password, a token, and TLS (server-only and mutual) with
 * certificates issued at test time by openssl. A wrong or missing credential must fail with
 * a message that says what to fix and the documented exit code (4; a creds file that is
 * missing or is not a creds file: 3).
 */
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { EXIT } from "@slipstream/cli";
import { type ConnectOptions, connect } from "@slipstream/nats";
import {
  hasNats,
  hasOpenssl,
  makeTlsFiles,
  natsOperatorConfig,
  natsUntrustedCreds,
  natsUserCreds,
  startNats,
  type TempDir,
  type TlsFiles,
  tempDir,
} from "@slipstream/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cli, foldOf } from "./helpers.js";

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
let tmp: TempDir;
beforeAll(async () => {
  tmp = await tempDir("slipstream-cli-creds-");
});
afterAll(async () => {
  await tmp?.cleanup();
});

/**
 * Creates bucket `name` with three keys through a client connected with `auth`, and a fold
 * of it at `<tmp>/<dir>`; returns the fold directory.
 */
async function seed(auth: ConnectOptions, name: string, dir: string): Promise<string> {
  const c = await connect({ timeoutMs: 5000, ...auth });
  try {
    const kv = await c.store({ name });
    for (const k of ["a", "b", "c"]) await kv.writer.put(`route.${k}`, enc(k));
    const fold = join(tmp.path, dir);
    await foldOf(kv, fold);
    // Moves the bucket past the fold, so `diff` proves it read the live bucket.
    await kv.writer.put("route.d", enc("d"));
    return fold;
  } finally {
    await c.close();
  }
}

/** `status` and `diff` both work with `flags`: status shows the bucket, diff finds the one missing key. */
async function expectStatusAndDiff(url: string, bucket: string, fold: string, flags: string[]): Promise<void> {
  const status = await cli(["status", "--nats", url, "--bucket", bucket, ...flags]);
  expect(status.stderr).toBe("");
  expect(status.code).toBe(EXIT.OK);
  expect(status.stdout).toMatch(/sequences\s+first 1, last 4 \(4 messages/);
  const sj = (await cli(["status", "--nats", url, "--bucket", bucket, "--json", ...flags])).json();
  expect(sj).toMatchObject({ bucket: { name: bucket, lastSeq: "4" } });
  const diff = await cli(["diff", fold, "--nats", url, "--bucket", bucket, ...flags]);
  expect(diff.code).toBe(EXIT.PROBLEM);
  expect(diff.stdout).toMatch(/DIFFERENT — 1 missing, 0 extra, 0 stale/);
  expect(diff.stdout).toMatch(/missing\s+route\.d/);
}

/**
 * A refused credential: `status` and `diff` exit 4 with `hint` in the message, and --json
 * reports `CONNECTION_FAILED`.
 */
async function expectRefused(url: string, bucket: string, fold: string, flags: string[], hint: RegExp): Promise<void> {
  const r = await cli(["status", "--nats", url, "--bucket", bucket, "--timeout", "5s", ...flags]);
  expect(r.code).toBe(EXIT.UNAVAILABLE);
  expect(r.stdout).toBe("");
  expect(r.stderr).toMatch(hint);
  const d = await cli(["diff", fold, "--nats", url, "--bucket", bucket, "--json", "--timeout", "5s", ...flags]);
  expect(d.code).toBe(EXIT.UNAVAILABLE);
  expect(d.json()).toMatchObject({ error: { code: "CONNECTION_FAILED", exitCode: EXIT.UNAVAILABLE } });
  expect(d.json<{ error: { message: string } }>().error.message).toMatch(hint);
}

describe.skipIf(!hasNats("any"))("NATS credentials against real servers", () => {
  it("operator/JWT mode: --creds <file> for status and diff; untrusted, absent, missing and malformed creds", async () => {
    const dir = join(tmp.path, "operator");
    await mkdir(dir);
    const { conf, account } = await natsOperatorConfig(dir);
    await using server = await startNats({ args: ["-c", conf] });
    const creds = join(dir, "ops.creds");
    await writeFile(creds, natsUserCreds(account), { mode: 0o600 });
    const fold = await seed({ servers: server.url, credsFile: creds }, "jwt", "fold-jwt");

    await expectStatusAndDiff(server.url, "jwt", fold, ["--creds", creds]);
    // NATS_URL is the default server, with the creds file too.
    const viaEnv = await cli(["status", "--bucket", "jwt", "--creds", creds], { env: { NATS_URL: server.url } });
    expect(viaEnv.code).toBe(EXIT.OK);

    // A well-formed creds file of an account this server does not trust.
    const stranger = join(dir, "stranger.creds");
    await writeFile(stranger, natsUntrustedCreds());
    await expectRefused(
      server.url,
      "jwt",
      fold,
      ["--creds", stranger],
      /refused the credentials of --creds .*stranger\.creds/,
    );
    // No credentials at all.
    await expectRefused(
      server.url,
      "jwt",
      fold,
      [],
      /requires credentials: pass --creds <file>, --user\/--password or --token/,
    );

    // The creds file is input: missing or not a creds file → exit 3, naming the file, never its content.
    const missing = await cli(["status", "--nats", server.url, "--bucket", "jwt", "--creds", join(dir, "nope.creds")]);
    expect(missing.code).toBe(EXIT.INPUT);
    expect(missing.stderr).toMatch(/creds file .*nope\.creds does not exist/);
    const junk = join(dir, "junk.creds");
    await writeFile(junk, "not a creds file: s3cret-content");
    const bad = await cli(["diff", fold, "--nats", server.url, "--bucket", "jwt", "--creds", junk, "--json"]);
    expect(bad.code).toBe(EXIT.INPUT);
    expect(bad.json()).toMatchObject({ error: { code: "INVALID_CREDS", exitCode: EXIT.INPUT } });
    expect(bad.stderr).toMatch(/junk\.creds is not a NATS \.creds file/);
    expect(bad.stdout + bad.stderr).not.toContain("s3cret-content");
  });

  it("--user/--password for status and diff; a wrong password and a missing one are refused (exit 4)", async () => {
    await using server = await startNats({ args: ["--user", "ops", "--pass", "s3cret"] });
    const fold = await seed({ servers: server.url, user: "ops", pass: "s3cret" }, "userpass", "fold-userpass");
    await expectStatusAndDiff(server.url, "userpass", fold, ["--user", "ops", "--password", "s3cret"]);
    await expectRefused(
      server.url,
      "userpass",
      fold,
      ["--user", "ops", "--password", "n0t-the-pa55"],
      /refused the credentials of --user\/--password \(user "ops"\)/,
    );
    await expectRefused(server.url, "userpass", fold, [], /requires credentials/);
    const leaked = await cli([
      "status",
      "--nats",
      server.url,
      "--bucket",
      "userpass",
      "--user",
      "ops",
      "--password",
      "n0t-the-pa55",
    ]);
    expect(leaked.stderr).not.toContain("n0t-the-pa55");
  });

  it("--token for status and diff; a wrong token is refused (exit 4) and never echoed", async () => {
    await using server = await startNats({ args: ["--auth", "t0ken-for-ops"] });
    const fold = await seed({ servers: server.url, token: "t0ken-for-ops" }, "tok", "fold-token");
    await expectStatusAndDiff(server.url, "tok", fold, ["--token", "t0ken-for-ops"]);
    await expectRefused(server.url, "tok", fold, ["--token", "not-the-t0ken"], /refused the credentials of --token/);
    const r = await cli(["status", "--nats", server.url, "--bucket", "tok", "--token", "not-the-t0ken"]);
    expect(r.stderr).not.toContain("not-the-t0ken");
  });
});

describe.skipIf(!hasNats("any") || !hasOpenssl())("NATS TLS with certificates issued at test time (openssl)", () => {
  let files: TlsFiles;
  beforeAll(async () => {
    files = await makeTlsFiles(join(tmp.path, "tls"));
  });

  it("--tls-ca trusts the server's CA for status and diff; another CA or the system CAs (--tls) are refused", async () => {
    await using server = await startNats({
      args: ["--tls", "--tlscert", files.serverCert, "--tlskey", files.serverKey],
    });
    const fold = await seed({ servers: server.url, tls: { caFile: files.ca } }, "tls", "fold-tls");
    await expectStatusAndDiff(server.url, "tls", fold, ["--tls-ca", files.ca]);
    const other = await cli(["status", "--nats", server.url, "--bucket", "tls", "--tls-ca", files.otherCa]);
    expect(other.code).toBe(EXIT.UNAVAILABLE);
    expect(other.stderr).toMatch(/slipstream: .*(certificate|TLS|tls)/i);
    const system = await cli(["status", "--nats", server.url, "--bucket", "tls", "--tls"]);
    expect(system.code).toBe(EXIT.UNAVAILABLE);
  });

  it("mutual TLS: --tls-cert/--tls-key present a client certificate the server verifies; without one it refuses", async () => {
    await using server = await startNats({
      args: ["--tlsverify", "--tlscert", files.serverCert, "--tlskey", files.serverKey, "--tlscacert", files.ca],
    });
    const clientTls = { caFile: files.ca, certFile: files.clientCert, keyFile: files.clientKey };
    const fold = await seed({ servers: server.url, tls: clientTls }, "mtls", "fold-mtls");
    await expectStatusAndDiff(server.url, "mtls", fold, [
      "--tls-ca",
      files.ca,
      "--tls-cert",
      files.clientCert,
      "--tls-key",
      files.clientKey,
    ]);
    const noClientCert = await cli(["status", "--nats", server.url, "--bucket", "mtls", "--tls-ca", files.ca]);
    expect(noClientCert.code).toBe(EXIT.UNAVAILABLE);
    // The server's reason ("certificate required"), or the socket it closed during the TLS handshake.
    expect(noClientCert.stderr).toMatch(/^slipstream: connecting to .*(certificate required|TLS|ECONNRESET|socket)/);
  });
});
