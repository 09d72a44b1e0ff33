/** TLS: a server that requires it, our client with the right CA, the wrong CA, or none. */
import { fileURLToPath } from "node:url";
import { SlipstreamError } from "@slipstream/core";
import { connect } from "@slipstream/nats";
import { hasNats, hasOpenssl, makeTlsFiles, type NatsServerHandle, startNats, tempDir } from "@slipstream/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const fixture = (name: string) => fileURLToPath(new URL(`./fixtures/tls/${name}`, import.meta.url));

describe.skipIf(!hasNats("any"))("TLS", () => {
  let server: NatsServerHandle;
  beforeAll(async () => {
    server = await startNats({
      args: ["--tls", "--tlscert", fixture("server.pem"), "--tlskey", fixture("server-key.pem")],
    });
  });
  afterAll(async () => {
    await server?.close();
  });

  it("connects with the server's CA and round-trips a value", async () => {
    const nc = await connect({ servers: server.url, tls: { caFile: fixture("ca.pem") }, timeoutMs: 5_000 });
    try {
      expect(nc.isHealthy).toBe(true);
      const kv = await nc.store({ name: "tls_bucket" });
      await kv.writer.put("a", new TextEncoder().encode("secret"));
      expect(new TextDecoder().decode((await kv.reader.get("a"))?.value)).toBe("secret");
    } finally {
      await nc.close();
    }
  });

  it("refuses a server certificate from an unknown CA with CONNECTION_FAILED", async () => {
    const err = await connect({
      servers: server.url,
      tls: { caFile: fixture("other-ca.pem") },
      timeoutMs: 5_000,
    }).catch((e: unknown) => e);
    expect(SlipstreamError.is(err, "CONNECTION_FAILED"), String(err)).toBe(true);
  });

  it("a client without TLS options (system CAs only) is refused with CONNECTION_FAILED", async () => {
    const err = await connect({ servers: server.url, timeoutMs: 5_000 }).catch((e: unknown) => e);
    expect(SlipstreamError.is(err, "CONNECTION_FAILED"), String(err)).toBe(true);
  });
});

describe.skipIf(!hasNats("any") || !hasOpenssl())("mutual TLS (certificates issued at test time by openssl)", () => {
  it("a client certificate signed by the server's CA connects; none fails with the server's reason when reconnects are off", async () => {
    await using dir = await tempDir("mtls-");
    const f = await makeTlsFiles(dir.path);
    await using server = await startNats({
      args: ["--tlsverify", "--tlscert", f.serverCert, "--tlskey", f.serverKey, "--tlscacert", f.ca],
    });
    const nc = await connect({
      servers: server.url,
      tls: { caFile: f.ca, certFile: f.clientCert, keyFile: f.clientKey },
      timeoutMs: 5_000,
    });
    try {
      await (await nc.store({ name: "mtls" })).writer.put("k", new TextEncoder().encode("v"));
    } finally {
      await nc.close();
    }
    // The refusal arrives after the client's side of the TLS 1.3 handshake; with reconnects
    // off it must surface at once as CONNECTION_FAILED, not as a wait for the timeout: with
    // the server's reason, or, when the server's reset wins the race with its alert, as the
    // reset connection.
    const err = await connect({
      servers: server.url,
      tls: { caFile: f.ca },
      timeoutMs: 60_000,
      maxReconnectAttempts: 0,
    }).catch((e: unknown) => e);
    expect(SlipstreamError.is(err, "CONNECTION_FAILED"), String(err)).toBe(true);
    expect((err as Error).message).toMatch(/certificate|ECONNRESET/i);
  });
});
