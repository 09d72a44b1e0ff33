import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { inspect } from "node:util";
import { connect as natsConnect } from "@nats-io/transport-node";
import { SlipstreamError, VersionToken, WatchCursor } from "@slipstream/core";
import { freePort, hasNats, natsOperatorConfig, natsUntrustedCreds, natsUserCreds, tempDir } from "@slipstream/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { decodeCreds } from "../src/credentials.js";
import { connect, NatsConnection } from "../src/index.js";
import { bucketName, connectTo, enc, type NatsServerHandle, startNats } from "./helpers.js";

const SECRET = "s3cret-Pa55";

function leaks(conn: NatsConnection, secret: string): boolean {
  return [String(conn), JSON.stringify(conn), inspect(conn), inspect(conn, { showHidden: true, depth: 5 })].some((s) =>
    s.includes(secret),
  );
}

describe.skipIf(!hasNats("any"))("connect with user/pass", () => {
  let server: NatsServerHandle;
  beforeAll(async () => {
    server = await startNats({ args: ["--user", "alice", "--pass", SECRET] });
  });
  afterAll(async () => {
    await server?.close();
  });

  it("explicit user/pass connects; credentials never show in toString/JSON/inspect", async () => {
    const conn = await connect({ servers: server.url, user: "alice", pass: SECRET, name: "t1" });
    try {
      expect(conn.isHealthy).toBe(true);
      const kv = await conn.store({ name: bucketName("auth") });
      await kv.writer.put("k", enc("v"));
      expect(leaks(conn, SECRET)).toBe(false);
      expect(String(conn)).toContain("auth=user/pass");
    } finally {
      await conn.close();
    }
  });

  it("user/pass from the URL's userinfo; the URL's secret is redacted too", async () => {
    const url = server.url.replace("nats://", `nats://alice:${SECRET}@`);
    const conn = await connect({ servers: url });
    try {
      expect(conn.isHealthy).toBe(true);
      expect(leaks(conn, SECRET)).toBe(false);
    } finally {
      await conn.close();
    }
  });

  it("wrong credentials fail with CONNECTION_FAILED and a message without the secret", async () => {
    const err = await connect({ servers: server.url, user: "alice", pass: "wrong-one", timeoutMs: 5000 }).catch(
      (e) => e,
    );
    expect(SlipstreamError.is(err, "CONNECTION_FAILED")).toBe(true);
    expect(String(err.message)).not.toContain("wrong-one");
    const none = await connect({ servers: server.url, timeoutMs: 5000 }).catch((e) => e);
    expect(SlipstreamError.is(none, "CONNECTION_FAILED")).toBe(true);
  });

  it("explicit user/pass take priority over the URL's userinfo", async () => {
    const url = server.url.replace("nats://", `nats://alice:${SECRET}@`);
    const err = await connect({ servers: url, user: "alice", pass: "wrong-one", timeoutMs: 5000 }).catch((e) => e);
    expect(SlipstreamError.is(err, "CONNECTION_FAILED")).toBe(true);
  });

  it("creds and credsFile take priority over valid user/pass (the server then sees a JWT, not the password)", async () => {
    const creds = natsUntrustedCreds();
    const viaText = await connect({ servers: server.url, creds, user: "alice", pass: SECRET, timeoutMs: 5000 }).catch(
      (e) => e,
    );
    expect(SlipstreamError.is(viaText, "CONNECTION_FAILED")).toBe(true);
    expect(viaText.message).toContain("creds");
    await using dir = await tempDir("creds");
    const file = join(dir.path, "user.creds");
    await writeFile(file, creds);
    const viaFile = await connect({
      servers: server.url,
      credsFile: file,
      user: "alice",
      pass: SECRET,
      timeoutMs: 5000,
    }).catch((e) => e);
    expect(SlipstreamError.is(viaFile, "CONNECTION_FAILED")).toBe(true);
    expect(viaFile.message).toContain("credsFile");
    // The same user/pass alone connect fine, so the refusals above were the creds being used.
    const plain = await connect({ servers: server.url, user: "alice", pass: SECRET });
    expect(plain.isHealthy).toBe(true);
    await plain.close();
  });

  it("user/pass take priority over a token", async () => {
    const conn = await connect({ servers: server.url, user: "alice", pass: SECRET, token: "ignored-token" });
    expect(conn.isHealthy).toBe(true);
    expect(String(conn)).toContain("auth=user/pass");
    await conn.close();
  });
});

describe.skipIf(!hasNats("any"))("connect with a token", () => {
  let server: NatsServerHandle;
  beforeAll(async () => {
    server = await startNats({ args: ["--auth", SECRET] });
  });
  afterAll(async () => {
    await server?.close();
  });

  it("token option and URL token both connect, redacted", async () => {
    const a = await connect({ servers: server.url, token: SECRET });
    const b = await connect({ servers: server.url.replace("nats://", `nats://${SECRET}@`) });
    try {
      expect(a.isHealthy && b.isHealthy).toBe(true);
      expect(leaks(a, SECRET) || leaks(b, SECRET)).toBe(false);
      expect(String(a)).toContain("auth=token");
    } finally {
      await a.close();
      await b.close();
    }
    const err = await connect({ servers: server.url, token: "nope", timeoutMs: 5000 }).catch((e) => e);
    expect(SlipstreamError.is(err, "CONNECTION_FAILED")).toBe(true);
  });
});

describe.skipIf(!hasNats("any"))("connect with creds (operator mode)", () => {
  let server: NatsServerHandle;
  let creds: string;
  let stranger: string;
  let dir: Awaited<ReturnType<typeof tempDir>>;
  beforeAll(async () => {
    dir = await tempDir("operator");
    const { conf, account } = await natsOperatorConfig(dir.path);
    creds = natsUserCreds(account);
    stranger = natsUntrustedCreds(); // signed by an account the server does not know
    server = await startNats({ args: ["-c", conf] });
  });
  afterAll(async () => {
    await server?.close();
    await dir?.[Symbol.asyncDispose]();
  });

  it("creds text, base64 creds and credsFile all connect; the seed never shows", async () => {
    const file = join(dir.path, "user.creds");
    await writeFile(file, creds);
    const seed = /SU[A-Z0-9]{50,}/.exec(creds)![0];
    for (const opts of [{ creds }, { creds: Buffer.from(creds).toString("base64") }, { credsFile: file }]) {
      const conn = await connect({ servers: server.url, timeoutMs: 5000, ...opts });
      try {
        const kv = await conn.store({ name: bucketName("creds") });
        await kv.writer.put("k", enc("v"));
        expect(leaks(conn, seed)).toBe(false);
        expect(leaks(conn, creds.slice(40, 80))).toBe(false);
      } finally {
        await conn.close();
      }
    }
  });

  it("creds the server does not trust fail with CONNECTION_FAILED", async () => {
    const err = await connect({ servers: server.url, creds: stranger, timeoutMs: 5000 }).catch((e) => e);
    expect(SlipstreamError.is(err, "CONNECTION_FAILED")).toBe(true);
  });
});

describe("credentials input", () => {
  const creds = [
    "-----BEGIN NATS USER JWT-----",
    "eyJ0eXAiOiJKV1QiLCJhbGciOiJlZDI1NTE5LW5rZXkifQ.e30.c2ln",
    "------END NATS USER JWT------",
    "",
    "-----BEGIN USER NKEY SEED-----",
    "SUAMK2FG4MI6UE3ACF3FK3OIQBCEIEZV7NSWFFEW63UXMRLFM2XLAXK4GY",
    "------END USER NKEY SEED------",
  ].join("\n");

  it("creds accepts the .creds text or base64 of it; anything else is INVALID_ARGUMENT", () => {
    expect(new TextDecoder().decode(decodeCreds(creds))).toBe(creds);
    expect(new TextDecoder().decode(decodeCreds(Buffer.from(creds).toString("base64")))).toBe(creds);
    expect(() => decodeCreds("not creds")).toThrow(expect.objectContaining({ code: "INVALID_ARGUMENT" }));
  });

  it("creds take priority: garbage creds fail even with valid-looking user/pass; the secret is not echoed", async () => {
    const err = await connect({
      servers: "nats://127.0.0.1:1",
      creds: "garbage-creds-value",
      user: "u",
      pass: "p",
    }).catch((e) => e);
    expect(SlipstreamError.is(err, "INVALID_ARGUMENT")).toBe(true);
    expect(err.message).not.toContain("garbage-creds-value");
  });

  it("a missing credsFile is INVALID_ARGUMENT", async () => {
    await using dir = await tempDir("creds");
    const err = await connect({ servers: "nats://127.0.0.1:1", credsFile: `${dir.path}/missing.creds` }).catch(
      (e) => e,
    );
    expect(SlipstreamError.is(err, "INVALID_ARGUMENT")).toBe(true);
  });

  it("a fired signal aborts the dial with ABORTED", async () => {
    const ctl = new AbortController();
    ctl.abort();
    const err = await connect({ servers: "nats://127.0.0.1:1", signal: ctl.signal }).catch((e) => e);
    expect(SlipstreamError.is(err, "ABORTED")).toBe(true);
  });

  it("no server listening → CONNECTION_FAILED", async () => {
    const port = await freePort();
    const err = await connect({ servers: `nats://127.0.0.1:${port}`, timeoutMs: 3000 }).catch((e) => e);
    expect(SlipstreamError.is(err, "CONNECTION_FAILED")).toBe(true);
  });
});

describe.skipIf(!hasNats("any"))("connection, buckets and hostile input", () => {
  let server: NatsServerHandle;
  let conn: NatsConnection;
  beforeAll(async () => {
    server = await startNats();
    conn = await connectTo(server);
  });
  afterAll(async () => {
    await conn?.close();
    await server?.close();
  });

  it("store creates with defaults and returns an existing bucket unchanged", async () => {
    const name = bucketName("cfg");
    const kv = await conn.store({ name });
    const st = await kv.status();
    expect(st).toMatchObject({ history: 1, maxBytes: 10 * 1024 * 1024, discard: "new", storage: "file", replicas: 1 });
    await kv.writer.put("a", enc("1"));
    const again = await conn.store({ name, history: 7, maxBytes: 1234, discard: "old" });
    const st2 = await again.status();
    expect(st2).toMatchObject({ history: 1, maxBytes: 10 * 1024 * 1024, discard: "new", messages: 1 });
  });

  it("store honours history, maxBytes, maxAgeMs, storage and discard old", async () => {
    const kv = await conn.store({
      name: bucketName("cfg2"),
      history: 5,
      maxBytes: 64 * 1024,
      maxAgeMs: 60_000,
      storage: "memory",
      discard: "old",
    });
    expect(await kv.status()).toMatchObject({
      history: 5,
      maxBytes: 65536,
      maxAgeMs: 60_000,
      storage: "memory",
      discard: "old",
      firstSeq: 0n,
      lastSeq: 0n,
      consumers: 0,
    });
    // discard old: a full bucket evicts its head instead of refusing writes
    for (let i = 0; i < 100; i++) await kv.writer.put(`k.${i}`, new Uint8Array(2000));
    const st = await kv.status();
    expect(st.lastSeq).toBe(100n);
    expect(st.firstSeq).toBeGreaterThan(1n);
  });

  it("discard new refuses writes at maxBytes", async () => {
    const kv = await conn.store({ name: bucketName("full"), maxBytes: 8 * 1024 });
    const err = await (async () => {
      for (let i = 0; i < 20; i++) await kv.writer.put(`k.${i}`, new Uint8Array(1000));
    })().catch((e) => e);
    expect(SlipstreamError.is(err, "BACKEND")).toBe(true);
  });

  it("bad bucket names and configs are INVALID_ARGUMENT", async () => {
    for (const name of ["", "a.b", "a b", "KV*", "a>", "ü", "x".repeat(300)]) {
      const err = await conn.store({ name }).catch((e) => e);
      expect(SlipstreamError.is(err, "INVALID_ARGUMENT"), `bucket name ${JSON.stringify(name)}`).toBe(true);
    }
    const bad = [
      { history: 0 },
      { history: 65 },
      { maxBytes: -5 },
      { replicas: 0 },
      { maxAgeMs: -1 },
      { storage: "disk" },
      { discard: "x" },
    ];
    for (const cfg of bad) {
      const err = await conn.store({ name: "ok", ...(cfg as object) }).catch((e) => e);
      expect(SlipstreamError.is(err, "INVALID_ARGUMENT"), JSON.stringify(cfg)).toBe(true);
    }
  });

  it("bad keys are INVALID_ARGUMENT before any round trip", async () => {
    const kv = await conn.store({ name: bucketName("keys") });
    const badKeys = ["", "a b", "a.*", "a.>", ">", ".a", "a.", "a..b", "$x", "a\nb", "ключ", "k".repeat(5000)];
    for (const key of badKeys) {
      for (const op of [
        () => kv.writer.put(key, enc("v")),
        () => kv.writer.create(key, enc("v")),
        () => kv.writer.update(key, enc("v"), VersionToken.fromRevision(1n)),
        () => kv.writer.delete(key),
        () => kv.writer.deleteWithVersion(key, VersionToken.fromRevision(1n)),
        () => kv.writer.purge(key),
        () => kv.reader.get(key),
        () => kv.reader.entry(key),
      ]) {
        const err = await op().catch((e) => e);
        expect(SlipstreamError.is(err, "INVALID_ARGUMENT"), `key ${JSON.stringify(key.slice(0, 20))}`).toBe(true);
      }
    }
    expect((await kv.status()).messages).toBe(0);
    const err = await (async () => {
      for await (const _ of kv.reader.keys("a.*")) return;
    })().catch((e) => e);
    expect(SlipstreamError.is(err, "INVALID_ARGUMENT")).toBe(true);
    const werr = await kv.watcher
      .watch({ kind: "prefix", prefix: "a b" })
      [Symbol.asyncIterator]()
      .next()
      .catch((e) => e);
    expect(SlipstreamError.is(werr, "INVALID_ARGUMENT")).toBe(true);
    const cerr = await kv.watcher
      .watch({ kind: "all" }, { from: WatchCursor.fromVersion(VersionToken.fromBytes(new Uint8Array([1, 2]))) })
      [Symbol.asyncIterator]()
      .next()
      .catch((e) => e);
    expect(SlipstreamError.is(cerr, "INVALID_ARGUMENT")).toBe(true);
  });

  it("fromClient wraps an existing nats.js connection; close() leaves the client open", async () => {
    const nc = await natsConnect({ servers: server.url });
    const wrapped = NatsConnection.fromClient(nc);
    const kv = await wrapped.store({ name: bucketName("fc") });
    await kv.writer.put("a", enc("1"));
    expect(wrapped.isHealthy).toBe(true);
    await wrapped.close();
    expect(wrapped.isHealthy).toBe(false);
    expect(nc.isClosed()).toBe(false);
    const err = await wrapped.store({ name: kv.name }).catch((e) => e);
    expect(SlipstreamError.is(err, "NOT_CONNECTED")).toBe(true);
    await nc.close();
  });
});
