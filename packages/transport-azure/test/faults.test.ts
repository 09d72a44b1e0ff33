import { createHash, randomFillSync } from "node:crypto";
import { AnonymousCredential, ContainerClient } from "@azure/storage-blob";
import { SlipstreamError } from "@slipstream/core";
import { type AzuriteHandle, startAzurite, waitFor } from "@slipstream/testkit";
import { afterEach, describe, expect, it } from "vitest";
import { AzureBlobStore } from "../src/index.js";
import { blobNames, freshContainer, serviceFor } from "./helpers.js";
import { type FaultEndpoint, stalledEndpoint, stallingProxy } from "./proxies.js";

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const enc = new TextEncoder();
const MiB = 1024 * 1024;

async function* chunks(...parts: Uint8Array[]): AsyncGenerator<Uint8Array> {
  for (const p of parts) yield p;
}

async function azurite(): Promise<AzuriteHandle> {
  const a = await startAzurite();
  cleanups.push(() => a.close());
  return a;
}

async function endpoint(make: () => Promise<FaultEndpoint>): Promise<FaultEndpoint> {
  const e = await make();
  cleanups.push(() => e.close());
  return e;
}

async function failure(p: Promise<unknown>): Promise<SlipstreamError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (err === undefined) expect.fail("expected a rejection, but it resolved");
  if (!SlipstreamError.is(err)) expect.fail(`expected a SlipstreamError, got ${String(err)}`);
  return err;
}

async function drain(body: AsyncIterable<Uint8Array> | Iterable<Uint8Array>): Promise<Buffer> {
  const out: Buffer[] = [];
  for await (const c of body) out.push(Buffer.from(c));
  return Buffer.concat(out);
}

async function listKeys(store: AzureBlobStore, prefix: string): Promise<string[]> {
  const keys: string[] = [];
  for await (const item of store.list(prefix)) keys.push(item.key);
  return keys.sort();
}

describe("a stalled endpoint (accepts connections, never answers)", () => {
  // The SDK's default retry policy is left as is: the store's timeoutMs bounds every wait
  // regardless of what the client would otherwise do.
  async function stalledStore(timeoutMs = 300) {
    const stalled = await endpoint(stalledEndpoint);
    const container = new ContainerClient(
      `http://127.0.0.1:${stalled.port}/devstoreaccount1/stalled`,
      new AnonymousCredential(),
    );
    return { stalled, store: new AzureBlobStore({ container, timeoutMs, blockSizeBytes: 64 * 1024 }) };
  }

  const calls: [string, RegExp, (s: AzureBlobStore) => Promise<unknown>][] = [
    ["readSmall", /read k timed out after 300 ms/, (s) => s.readSmall("k", { maxBytes: 100 })],
    ["get", /get k stalled/, (s) => s.get("k")],
    ["put (one block: a single Put Blob)", /put k stalled/, (s) => s.put("k", chunks(enc.encode("payload")))],
    [
      "put (staged blocks)",
      /put k stalled/,
      (s) => s.put("k", chunks(...Array.from({ length: 8 }, () => randomFillSync(Buffer.alloc(64 * 1024))))),
    ],
    [
      "conditionalPut (create)",
      /create k timed out/,
      (s) => s.conditionalPut("k", enc.encode("x"), { ifAbsent: true }),
    ],
    [
      "conditionalPut (replace)",
      /replace k timed out/,
      (s) => s.conditionalPut("k", enc.encode("x"), { ifVersion: '"0x1"' }),
    ],
    [
      "list",
      /list p\/ stalled/,
      async (s) => {
        for await (const _ of s.list("p/")) expect.fail("nothing can be listed");
      },
    ],
    ["delete", /delete k timed out/, (s) => s.delete("k")],
  ];
  for (const [op, message, call] of calls) {
    it(`${op} fails with TIMEOUT and closes its connection`, async () => {
      const { stalled, store } = await stalledStore();
      const err = await failure(call(store));
      expect(err.code, err.message).toBe("TIMEOUT");
      expect(err.message).toMatch(message);
      expect(stalled.accepted()).toBeGreaterThan(0);
      // The timed-out request was aborted, not left hanging on the socket.
      await waitFor(() => stalled.open() === 0, { timeoutMs: 5_000, message: "the client closed its connection" });
    });
  }

  it("the caller's signal ends a stalled call with ABORTED", async () => {
    const { stalled, store } = await stalledStore(60_000);
    const ctl = new AbortController();
    const pending = failure(store.readSmall("k", { maxBytes: 10, signal: ctl.signal }));
    await waitFor(() => stalled.accepted() > 0, { message: "the request reached the endpoint" });
    ctl.abort();
    expect((await pending).code).toBe("ABORTED");
  });

  it("a body that stops mid-stream fails with TIMEOUT after what arrived", async () => {
    const server = await azurite();
    const container = await freshContainer(serviceFor(server), "stall");
    const direct = new AzureBlobStore({ container });
    const payload = randomFillSync(Buffer.alloc(2 * MiB));
    await direct.put("k", chunks(payload));
    const proxy = await endpoint(() => stallingProxy(server.port, 256 * 1024));
    const viaProxy = new AzureBlobStore({
      container: new ContainerClient(
        `http://127.0.0.1:${proxy.port}/devstoreaccount1/${container.containerName}`,
        new AnonymousCredential(),
      ),
      timeoutMs: 300,
    });
    // Anonymous reads need a public container; the proxy only cuts bytes, it does not authenticate.
    await container.setAccessPolicy("container");
    const got = await viaProxy.get("k");
    expect(got?.size).toBe(2 * MiB);
    let received = 0;
    const err = await failure(
      (async () => {
        for await (const c of got?.body ?? []) received += c.byteLength;
      })(),
    );
    expect(err.code, err.message).toBe("TIMEOUT");
    expect(err.message).toMatch(/get k stalled/);
    expect(received).toBeGreaterThan(0);
    expect(received).toBeLessThan(2 * MiB);
    await waitFor(() => proxy.open() === 0, { timeoutMs: 5_000, message: "the client closed its connection" });
  });
});

describe("Azurite killed mid-operation", () => {
  async function world() {
    const server = await azurite();
    const service = serviceFor(server);
    const container = await freshContainer(service, "kill");
    // Small blocks, one at a time: a put is many requests, so a kill lands in the middle.
    const store = new AzureBlobStore({ container, blockSizeBytes: 256 * 1024, concurrency: 1, timeoutMs: 10_000 });
    await store.put("kill/base", chunks(enc.encode("settled before the crash")));
    // Azurite saves its blob index on a graceful stop: "base" is durable from here on.
    await server.restart();
    return { server, container, store };
  }

  it("a put fails with BACKEND or TIMEOUT and nothing of it is visible after the restart", async () => {
    const { server, container, store } = await world();
    let sent = 0;
    async function* body(): AsyncGenerator<Uint8Array> {
      for (let i = 0; i < 128; i++) {
        if (sent === 2 * MiB) await server.kill();
        const chunk = randomFillSync(Buffer.alloc(128 * 1024));
        sent += chunk.byteLength;
        yield chunk;
      }
    }
    const err = await failure(store.put("kill/big", body()));
    expect(["BACKEND", "TIMEOUT"], err.message).toContain(err.code);
    expect(sent).toBeGreaterThan(2 * MiB);
    expect(sent).toBeLessThan(16 * MiB);
    expect(server.running).toBe(false);

    await server.restart();
    expect(await store.get("kill/big")).toBeUndefined();
    expect(await listKeys(store, "kill/")).toEqual(["kill/base"]);
    expect(await blobNames(container)).toEqual(["kill/base"]);
    const base = await store.readSmall("kill/base", { maxBytes: 100 });
    expect(Buffer.from(base?.bytes ?? []).toString()).toBe("settled before the crash");

    // A retry after the restart publishes the whole object.
    const payload = randomFillSync(Buffer.alloc(3 * MiB + 17));
    await store.put("kill/big", chunks(payload));
    const got = await store.get("kill/big");
    expect(got?.size).toBe(payload.byteLength);
    expect((await drain(got?.body ?? [])).equals(payload)).toBe(true);
  });

  it("a download fails with BACKEND or TIMEOUT; the stored object is intact after the restart", async () => {
    const { server, store } = await world();
    const payload = randomFillSync(Buffer.alloc(32 * MiB));
    const digest = createHash("sha256").update(payload).digest("hex");
    await store.put("kill/obj", chunks(payload));
    await server.restart();
    const got = await store.get("kill/obj");
    expect(got?.size).toBe(payload.byteLength);
    let received = 0;
    const err = await failure(
      (async () => {
        for await (const c of got?.body ?? []) {
          if (received === 0) await server.kill();
          received += c.byteLength;
        }
      })(),
    );
    expect(["BACKEND", "TIMEOUT"], err.message).toContain(err.code);
    expect(received).toBeLessThan(payload.byteLength);

    await server.restart();
    const again = await store.get("kill/obj");
    expect(
      createHash("sha256")
        .update(await drain(again?.body ?? []))
        .digest("hex"),
    ).toBe(digest);
  });
});
