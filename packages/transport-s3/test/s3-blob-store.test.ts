import { createHash, randomFillSync } from "node:crypto";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { GetObjectCommand, ListObjectsV2Command, PutObjectCommand, type S3Client } from "@aws-sdk/client-s3";
import { MANIFEST_FILE, SlipstreamError } from "@slipstream/core";
import { freePort, tempDir, waitFor } from "@slipstream/testkit";
import { ArtifactTransport, makeTestArtifact } from "@slipstream/transport";
import { afterEach, describe, expect, it } from "vitest";
import { S3BlobStore } from "../src/index.js";
import { chunks, freshStore, MiB, readAll, useS3rver } from "./helpers.js";
import { type Fault, type FaultProxy, startFaultProxy } from "./proxy.js";

const s3 = useS3rver();
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

interface Recorded {
  command: string;
  headers: Record<string, string>;
  input: Record<string, unknown>;
  output?: Record<string, unknown>;
  error?: unknown;
}

/**
 * Records every request the client sends (command, HTTP headers, input, output): an
 * inspection middleware on a real client talking to a real server, not a mock.
 */
function recording(client: S3Client): Recorded[] {
  const log: Recorded[] = [];
  client.middlewareStack.add(
    (next, context) => async (args) => {
      const request = args.request as { headers?: Record<string, string> } | undefined;
      const entry: Recorded = {
        command: String(context.commandName),
        headers: { ...(request?.headers ?? {}) },
        input: args.input as Record<string, unknown>,
      };
      log.push(entry);
      try {
        const out = await next(args);
        entry.output = out.output as unknown as Record<string, unknown>;
        return out;
      } catch (err) {
        entry.error = err;
        throw err;
      }
    },
    { step: "build", name: "slipstreamTestRecorder" },
  );
  return log;
}

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (err) {
    if (SlipstreamError.is(err)) return err.code;
    return `not a SlipstreamError: ${String(err)}`;
  }
  return "resolved";
}

async function proxy(decide: (req: import("node:http").IncomingMessage) => Fault | undefined): Promise<FaultProxy> {
  const p = await startFaultProxy(s3.server.endpoint, decide);
  cleanups.push(() => p.close());
  return p;
}

function clientFor(endpoint: string): S3Client {
  return s3.client(endpoint);
}

describe("S3BlobStore on s3rver", () => {
  it("s3rver ignores If-None-Match, which is why the conformance run uses conditionalWrites: false", async () => {
    const client = s3.client();
    const Key = `claim-${Date.now()}`;
    const Bucket = s3.server.bucket;
    await client.send(new PutObjectCommand({ Bucket, Key, Body: "first", IfNoneMatch: "*" }));
    // Real S3 answers 412 here; s3rver overwrites.
    await client.send(new PutObjectCommand({ Bucket, Key, Body: "second", IfNoneMatch: "*" }));
    const got = await client.send(new GetObjectCommand({ Bucket, Key }));
    expect(await got.Body?.transformToString()).toBe("second");
  });

  it("conditionalWrites: false refuses conditionalPut with BACKEND; ArtifactTransport refuses to publish without opt-in", async () => {
    const store = freshStore(s3.client(), s3.server.bucket, { conditionalWrites: false });
    expect(store.capabilities.conditionalWrites).toBe(false);
    const err = await store.conditionalPut("p", new Uint8Array([1]), { ifAbsent: true }).catch((e: unknown) => e);
    expect(SlipstreamError.is(err, "BACKEND")).toBe(true);
    expect((err as Error).message).toMatch(/conditional writes/);

    await using dir = await tempDir("slipstream-s3-refuse-");
    await makeTestArtifact(join(dir.path, "a"), { revision: 3n });
    const strict = new ArtifactTransport(store);
    const refused = await strict.upload("k", join(dir.path, "a")).catch((e: unknown) => e);
    expect(SlipstreamError.is(refused, "BACKEND")).toBe(true);
    expect((refused as Error).message).toMatch(/allowNonAtomicPointer/);
    const listed = [];
    for await (const item of store.list("")) listed.push(item);
    expect(listed).toEqual([]);
  });

  it("conditional puts send If-None-Match: * and If-Match: <ETag>, and return the new ETag", async () => {
    const client = s3.client();
    const log = recording(client);
    const store = freshStore(client, s3.server.bucket, { conditionalWrites: true });
    const created = await store.conditionalPut("ptr", new TextEncoder().encode("v1"), { ifAbsent: true });
    expect(created.status).toBe("written");
    const create = log.filter((r) => r.command === "PutObjectCommand").at(-1);
    expect(create?.headers["if-none-match"]).toBe("*");
    expect(create?.headers["if-match"]).toBeUndefined();

    const read = await store.readSmall("ptr", { maxBytes: 100 });
    expect(read?.version).toMatch(/^".+"$/);
    expect(created.status === "written" && created.version).toBe(read?.version);

    const replaced = await store.conditionalPut("ptr", new TextEncoder().encode("v2"), { ifVersion: read!.version });
    const replace = log.filter((r) => r.command === "PutObjectCommand").at(-1);
    expect(replace?.headers["if-match"]).toBe(read?.version);
    expect(replace?.headers["if-none-match"]).toBeUndefined();
    expect(replaced.status).toBe("written");
    const after = await store.readSmall("ptr", { maxBytes: 100 });
    expect(Buffer.from(after?.bytes ?? []).toString()).toBe("v2");
    expect(replaced.status === "written" && replaced.version).toBe(after?.version);
  });

  const lost: [string, Fault, "ifAbsent" | "ifVersion"][] = [
    ["412 PreconditionFailed on a create", { kind: "error", status: 412, code: "PreconditionFailed" }, "ifAbsent"],
    ["412 PreconditionFailed on a replace", { kind: "error", status: 412, code: "PreconditionFailed" }, "ifVersion"],
    ["409 ConditionalRequestConflict", { kind: "error", status: 409, code: "ConditionalRequestConflict" }, "ifAbsent"],
    ["404 NoSuchKey on a replace", { kind: "error", status: 404, code: "NoSuchKey" }, "ifVersion"],
  ];
  for (const [what, fault, condition] of lost) {
    it(`a ${what} is { status: "conflict" } and writes nothing`, async () => {
      // Fault injection: the proxy answers conditional PUTs itself, forwards everything else.
      const p = await proxy((req) =>
        req.method === "PUT" && (req.headers["if-none-match"] || req.headers["if-match"]) ? fault : undefined,
      );
      const store = freshStore(clientFor(p.endpoint), s3.server.bucket, { conditionalWrites: true });
      const res = await store.conditionalPut(
        "ptr",
        new TextEncoder().encode("x"),
        condition === "ifAbsent" ? { ifAbsent: true } : { ifVersion: '"0123"' },
      );
      expect(res).toEqual({ status: "conflict" });
      expect(p.seen.filter((s) => s.startsWith("PUT "))).toHaveLength(1);
      expect(await store.get("ptr")).toBeUndefined();
    });
  }

  it("other errors of a conditional put are BACKEND with the S3 code and the cause", async () => {
    const p = await proxy((req) =>
      req.method === "PUT" ? { kind: "error", status: 403, code: "AccessDenied" } : undefined,
    );
    const store = freshStore(clientFor(p.endpoint), s3.server.bucket, { conditionalWrites: true });
    const err = await store.conditionalPut("ptr", new Uint8Array([1]), { ifAbsent: true }).catch((e: unknown) => e);
    expect(SlipstreamError.is(err, "BACKEND")).toBe(true);
    expect((err as Error).message).toMatch(/AccessDenied.*HTTP 403/);
    expect((err as Error).cause).toBeInstanceOf(Error);
  });

  it("round-trips a 24 MiB multipart upload (sha256 equal, one part per 8 MiB)", async () => {
    const client = s3.client();
    const log = recording(client);
    const store = freshStore(client, s3.server.bucket);
    const size = 24 * MiB + 123;
    const sent = createHash("sha256");
    async function* body(): AsyncGenerator<Uint8Array> {
      for (let left = size; left > 0; left -= MiB) {
        const buf = randomFillSync(Buffer.allocUnsafe(Math.min(MiB, left)));
        sent.update(buf);
        yield buf;
      }
    }
    await store.put("mp/big.bin", body(), { size });
    const commands = log.map((r) => r.command);
    expect(commands.filter((c) => c === "CreateMultipartUploadCommand")).toHaveLength(1);
    expect(commands.filter((c) => c === "UploadPartCommand")).toHaveLength(4);
    expect(commands.filter((c) => c === "CompleteMultipartUploadCommand")).toHaveLength(1);
    expect(commands).not.toContain("PutObjectCommand");

    const got = await store.get("mp/big.bin");
    expect(got?.size).toBe(size);
    const received = createHash("sha256");
    let n = 0;
    for await (const c of got!.body) {
      received.update(c);
      n += c.byteLength;
    }
    expect(n).toBe(size);
    expect(received.digest("hex")).toBe(sent.digest("hex"));
  });

  it("a body that fits in one part is sent with a single PutObject", async () => {
    const client = s3.client();
    const log = recording(client);
    const store = freshStore(client, s3.server.bucket);
    await store.put("one/x", chunks(Buffer.alloc(3 * MiB, 1), Buffer.alloc(MiB, 2)));
    expect(log.map((r) => r.command)).toEqual(["PutObjectCommand"]);
    const got = await store.get("one/x");
    expect(got?.size).toBe(4 * MiB);
    const bytes = await readAll(got!.body);
    expect(bytes.subarray(0, 3 * MiB).every((b) => b === 1)).toBe(true);
    expect(bytes.subarray(3 * MiB).every((b) => b === 2)).toBe(true);
  });

  it("a multipart upload that cannot be aborted is logged as a warning naming its upload id", async () => {
    // Fault injection: the proxy fails AbortMultipartUpload (DELETE ?uploadId=…).
    const p = await proxy((req) =>
      req.method === "DELETE" && req.url?.includes("uploadId=")
        ? { kind: "error", status: 403, code: "AccessDenied" }
        : undefined,
    );
    const client = clientFor(p.endpoint);
    const log = recording(client);
    const warnings: [string, Record<string, unknown> | undefined][] = [];
    const noop = () => {};
    const store = freshStore(client, s3.server.bucket, {
      logger: { debug: noop, info: noop, error: noop, warn: (msg, attrs) => warnings.push([msg, attrs]) },
    });
    async function* body(): AsyncGenerator<Uint8Array> {
      for (let i = 0; i < 10; i++) yield Buffer.alloc(MiB, i);
      await waitFor(() => log.some((r) => r.command === "UploadPartCommand" && r.output), { timeoutMs: 30_000 });
      throw new Error("the source broke");
    }
    const err = await store.put("warn/x", body()).catch((e: unknown) => e);
    expect((err as Error).message).toMatch(/the source broke/);
    const uploadId = log.find((r) => r.command === "CreateMultipartUploadCommand")?.output?.UploadId;
    expect(typeof uploadId).toBe("string");
    expect(
      warnings.some(([msg, attrs]) => /abort the multipart upload/.test(msg) && attrs?.uploadId === uploadId),
    ).toBe(true);
  });

  it("a put whose declared size disagrees with its body fails and writes nothing", async () => {
    const store = freshStore(s3.client(), s3.server.bucket);
    expect(await codeOf(store.put("sz/x", chunks("12345"), { size: 4 }))).toBe("INVALID_ARGUMENT");
    expect(await store.get("sz/x")).toBeUndefined();
  });

  it("aborting mid-upload rejects with ABORTED, aborts the multipart upload and leaves no object", async () => {
    const client = s3.client();
    const log = recording(client);
    const store = freshStore(client, s3.server.bucket);
    const ctl = new AbortController();
    async function* body(): AsyncGenerator<Uint8Array> {
      for (let i = 0; i < 10; i++) yield Buffer.alloc(MiB, i);
      // Let a part land so that a multipart upload really exists, then give up.
      await waitFor(() => log.some((r) => r.command === "UploadPartCommand" && r.output), { timeoutMs: 30_000 });
      ctl.abort();
      for (let i = 0; i < 30; i++) yield Buffer.alloc(MiB, 7);
    }
    expect(await codeOf(store.put("ab/x", body(), { signal: ctl.signal }))).toBe("ABORTED");
    const uploadId = log.find((r) => r.command === "CreateMultipartUploadCommand")?.output?.UploadId;
    expect(typeof uploadId).toBe("string");
    const aborts = log.filter((r) => r.command === "AbortMultipartUploadCommand");
    expect(aborts.length).toBeGreaterThan(0);
    expect(aborts.every((r) => r.input.UploadId === uploadId)).toBe(true);
    expect(log.some((r) => r.command === "CompleteMultipartUploadCommand")).toBe(false);
    expect(await store.get("ab/x")).toBeUndefined();
    const listed = [];
    for await (const item of store.list("ab/")) listed.push(item);
    expect(listed).toEqual([]);
  });

  it("a body that fails after parts were sent is BACKEND, aborts the upload and leaves no object", async () => {
    const client = s3.client();
    const log = recording(client);
    const store = freshStore(client, s3.server.bucket);
    async function* body(): AsyncGenerator<Uint8Array> {
      for (let i = 0; i < 10; i++) yield Buffer.alloc(MiB, i);
      await waitFor(() => log.some((r) => r.command === "UploadPartCommand" && r.output), { timeoutMs: 30_000 });
      throw new Error("the source broke");
    }
    const err = await store.put("bf/x", body()).catch((e: unknown) => e);
    expect(SlipstreamError.is(err, "BACKEND")).toBe(true);
    expect((err as Error).message).toMatch(/the source broke/);
    expect(log.some((r) => r.command === "AbortMultipartUploadCommand")).toBe(true);
    expect(await store.get("bf/x")).toBeUndefined();
  });

  it("readSmall asks for at most maxBytes + 1 bytes and reports the size of a larger object", async () => {
    const client = s3.client();
    const log = recording(client);
    const store = freshStore(client, s3.server.bucket);
    await store.put("rs/x", chunks(Buffer.alloc(5000, 1)));
    const err = await store.readSmall("rs/x", { maxBytes: 99 }).catch((e: unknown) => e);
    expect(SlipstreamError.is(err, "ARTIFACT_INVALID")).toBe(true);
    expect((err as Error).message).toMatch(/exceeds 99 bytes \(found 5000 bytes\)/);
    const get = log.filter((r) => r.command === "GetObjectCommand").at(-1);
    expect(get?.headers.range).toBe("bytes=0-99");
    await store.put("rs/empty", chunks());
    const empty = await store.readSmall("rs/empty", { maxBytes: 10 });
    expect(empty?.bytes.byteLength).toBe(0);
    expect(empty?.version).toMatch(/^".+"$/);
  });

  it("prefix: keys live under it in the bucket and list strips it", async () => {
    const client = s3.client();
    const store = new S3BlobStore({
      client,
      bucket: s3.server.bucket,
      prefix: "pfx-test/inner/",
      conditionalWrites: false,
    });
    expect(store.prefix).toBe("pfx-test/inner");
    await store.put("a/b", chunks("x"));
    const raw = await client.send(new ListObjectsV2Command({ Bucket: s3.server.bucket, Prefix: "pfx-test/" }));
    expect(raw.Contents?.map((c) => c.Key)).toEqual(["pfx-test/inner/a/b"]);
    const listed = [];
    for await (const item of store.list("a/")) listed.push(item.key);
    expect(listed).toEqual(["a/b"]);
    expect(store.objectKey("a/b")).toBe("pfx-test/inner/a/b");
  });

  it("keys with spaces, plus signs and non-ASCII characters round-trip and list", async () => {
    const store = freshStore(s3.client(), s3.server.bucket);
    const key = "odd/with space/plus+sign/ünïcødé.bin";
    await store.put(key, chunks("odd"));
    expect(Buffer.from((await store.readSmall(key, { maxBytes: 10 }))?.bytes ?? []).toString()).toBe("odd");
    const listed = [];
    for await (const item of store.list("odd/")) listed.push(item.key);
    expect(listed).toEqual([key]);
    await store.delete(key);
    expect(await store.get(key)).toBeUndefined();
  });

  it("refuses bad options with TypeError and bad keys with INVALID_ARGUMENT", async () => {
    const client = s3.client();
    const bucket = s3.server.bucket;
    expect(() => new S3BlobStore({ client: {} as S3Client, bucket })).toThrow(TypeError);
    expect(() => new S3BlobStore({ client, bucket: "" })).toThrow(TypeError);
    expect(() => new S3BlobStore({ client, bucket, partSizeBytes: MiB })).toThrow(/5 MiB/);
    expect(() => new S3BlobStore({ client, bucket, queueSize: 0 })).toThrow(TypeError);
    expect(() => new S3BlobStore({ client, bucket, timeoutMs: 0 })).toThrow(TypeError);
    expect(() => new S3BlobStore({ client, bucket, prefix: "../x" })).toThrow(SlipstreamError);
    const store = freshStore(client, bucket);
    for (const bad of ["", "/abs", "a/../b", "a//b"]) {
      expect(await codeOf(store.readSmall(bad, { maxBytes: 1 }))).toBe("INVALID_ARGUMENT");
      expect(await codeOf(store.delete(bad))).toBe("INVALID_ARGUMENT");
    }
  });

  it("a server that refuses connections is BACKEND naming ECONNREFUSED", async () => {
    const port = await freePort();
    const store = freshStore(s3.client(`http://127.0.0.1:${port}`), s3.server.bucket);
    const err = await store.readSmall("x", { maxBytes: 1 }).catch((e: unknown) => e);
    expect(SlipstreamError.is(err, "BACKEND")).toBe(true);
    expect((err as Error).message).toMatch(/ECONNREFUSED/);
  });

  it("a missing bucket is BACKEND (NoSuchBucket), not an absent object", async () => {
    const store = new S3BlobStore({ client: s3.client(), bucket: "no-such-bucket-here", conditionalWrites: false });
    const err = await store.get("x").catch((e: unknown) => e);
    expect(SlipstreamError.is(err, "BACKEND")).toBe(true);
    expect((err as Error).message).toMatch(/NoSuchBucket/);
  });
});

describe("bounded waits against a server that stops answering", () => {
  async function stalledStore(fault: Fault = { kind: "stall" }, timeoutMs = 300) {
    const p = await proxy(() => fault);
    return freshStore(clientFor(p.endpoint), s3.server.bucket, { conditionalWrites: true, timeoutMs });
  }

  const ops: [string, (store: S3BlobStore, signal?: AbortSignal) => Promise<unknown>][] = [
    ["put (one request)", (st, signal) => st.put("x", chunks("small"), { signal })],
    ["put (multipart)", (st, signal) => st.put("x", chunks(Buffer.alloc(12 * MiB)), { signal })],
    ["get", (st, signal) => st.get("x", { signal })],
    ["readSmall", (st, signal) => st.readSmall("x", { maxBytes: 10, signal })],
    ["conditionalPut", (st, signal) => st.conditionalPut("x", new Uint8Array(1), { ifAbsent: true }, { signal })],
    [
      "list",
      async (st, signal) => {
        for await (const _ of st.list("", { signal })) {
          // drain
        }
      },
    ],
    ["delete", (st, signal) => st.delete("x", { signal })],
  ];
  for (const [name, op] of ops) {
    it(`${name} fails with TIMEOUT`, async () => {
      const store = await stalledStore();
      expect(await codeOf(op(store))).toBe("TIMEOUT");
    });
  }

  it("a part that stalls mid-upload fails the put with TIMEOUT and the multipart upload is aborted", async () => {
    const p = await proxy((req) =>
      req.method === "PUT" && /[?&]partNumber=2(&|$)/.test(req.url ?? "") ? { kind: "stall" } : undefined,
    );
    const store = freshStore(clientFor(p.endpoint), s3.server.bucket, { timeoutMs: 500 });
    expect(await codeOf(store.put("mid/x", chunks(...Array.from({ length: 20 }, () => Buffer.alloc(MiB, 5)))))).toBe(
      "TIMEOUT",
    );
    const created = p.seen.find((r) => r.startsWith("POST ") && r.includes("uploads"));
    expect(created).toBeDefined();
    expect(p.seen.some((r) => r.startsWith("DELETE ") && r.includes("uploadId="))).toBe(true);
    expect(p.seen.some((r) => r.startsWith("POST ") && r.includes("uploadId="))).toBe(false);
    const direct = new S3BlobStore({ client: s3.client(), bucket: s3.server.bucket, prefix: store.prefix });
    expect(await direct.get("mid/x")).toBeUndefined();
  });

  it("the caller's signal ends a stalled call with ABORTED", async () => {
    const store = await stalledStore({ kind: "stall" }, 60_000);
    for (const [name, op] of ops) {
      const ctl = new AbortController();
      const pending = codeOf(op(store, ctl.signal));
      setTimeout(() => ctl.abort(), 50);
      expect(`${name}: ${await pending}`).toBe(`${name}: ABORTED`);
    }
  });

  it("a body that stops mid-stream fails with TIMEOUT, for get and for readSmall", async () => {
    const direct = freshStore(s3.client(), s3.server.bucket);
    await direct.put("body/x", chunks(Buffer.alloc(MiB, 3)));
    const p = await proxy((req) => (req.method === "GET" ? { kind: "stall-body", bytes: 1000 } : undefined));
    const store = new S3BlobStore({
      client: clientFor(p.endpoint),
      bucket: s3.server.bucket,
      prefix: direct.prefix,
      conditionalWrites: false,
      timeoutMs: 300,
    });
    const got = await store.get("body/x");
    expect(got?.size).toBe(MiB);
    expect(await codeOf(readAll(got!.body))).toBe("TIMEOUT");
    expect(await codeOf(store.readSmall("body/x", { maxBytes: 2 * MiB }))).toBe("TIMEOUT");
  });

  it("the caller's signal ends a body being read with ABORTED", async () => {
    const direct = freshStore(s3.client(), s3.server.bucket);
    await direct.put("body/y", chunks(Buffer.alloc(MiB, 3)));
    const p = await proxy((req) => (req.method === "GET" ? { kind: "stall-body", bytes: 1000 } : undefined));
    const store = new S3BlobStore({
      client: clientFor(p.endpoint),
      bucket: s3.server.bucket,
      prefix: direct.prefix,
      conditionalWrites: false,
    });
    const ctl = new AbortController();
    const got = await store.get("body/y", { signal: ctl.signal });
    const reading = codeOf(readAll(got!.body));
    setTimeout(() => ctl.abort(), 50);
    expect(await reading).toBe("ABORTED");
  });
});

describe("ArtifactTransport over S3BlobStore", () => {
  it("uploads and downloads an artifact (allowNonAtomicPointer: true)", async () => {
    const client = s3.client();
    const store = freshStore(client, s3.server.bucket);
    await using dir = await tempDir("slipstream-s3-transport-");
    const payload = randomFillSync(Buffer.alloc(3 * MiB));
    await makeTestArtifact(join(dir.path, "a"), {
      revision: 42n,
      payload,
      extra: { "sub/x.bin": new TextEncoder().encode("nested") },
    });
    const transport = new ArtifactTransport(store, { prefix: "edge", allowNonAtomicPointer: true });
    const res = await transport.upload("us-east/latest", join(dir.path, "a"));
    expect(res.outcome).toBe("published");
    expect((await transport.manifest("us-east/latest")).cursor.revision).toBe(42n);

    const raw = await client.send(new ListObjectsV2Command({ Bucket: s3.server.bucket, Prefix: `${store.prefix}/` }));
    expect(raw.Contents?.map((c) => c.Key).sort()).toEqual(
      [`${store.prefix}/edge/us-east/latest.manifest.json`, `${store.prefix}/${res.payloadKey}`].sort(),
    );

    const manifest = await transport.download("us-east/latest", join(dir.path, "b"));
    expect(manifest.cursor.revision).toBe(42n);
    expect((await readFile(join(dir.path, "b", "data", "fold.snap"))).equals(payload)).toBe(true);
    expect((await readFile(join(dir.path, "b", "data", "sub", "x.bin"))).toString()).toBe("nested");
    expect(
      (await readFile(join(dir.path, "b", MANIFEST_FILE))).equals(await readFile(join(dir.path, "a", MANIFEST_FILE))),
    ).toBe(true);
  });
});
