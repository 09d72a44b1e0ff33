import { randomFillSync } from "node:crypto";
import { ContainerClient, StorageSharedKeyCredential } from "@azure/storage-blob";
import { SlipstreamError } from "@slipstream/core";
import { afterEach, describe, expect, it } from "vitest";
import { AzureBlobStore } from "../src/index.js";
import { blobNames, freshContainer, useAzurite } from "./helpers.js";
import { countingProxy } from "./proxies.js";

const live = useAzurite();

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function container(label: string): Promise<ContainerClient> {
  const c = await freshContainer(live.service, label);
  cleanups.push(async () => {
    await c.delete();
  });
  return c;
}

const enc = new TextEncoder();
async function* chunks(...parts: Uint8Array[]): AsyncGenerator<Uint8Array> {
  for (const p of parts) yield p;
}
async function code(p: Promise<unknown>): Promise<string | undefined> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  return SlipstreamError.is(err) ? err.code : err === undefined ? undefined : `not a SlipstreamError: ${String(err)}`;
}

describe("AzureBlobStore", () => {
  it("validates its options with TypeError", async () => {
    const c = await container("options");
    expect(() => new AzureBlobStore({} as never)).toThrow(TypeError);
    expect(() => new AzureBlobStore({ container: { containerName: "x" } as never })).toThrow(/ContainerClient/);
    expect(() => new AzureBlobStore({ container: c, blockSizeBytes: 1000 })).toThrow(/blockSizeBytes/);
    expect(() => new AzureBlobStore({ container: c, blockSizeBytes: 100_000.5 })).toThrow(/blockSizeBytes/);
    expect(() => new AzureBlobStore({ container: c, concurrency: 0 })).toThrow(/concurrency/);
    expect(() => new AzureBlobStore({ container: c, timeoutMs: 0 })).toThrow(/timeoutMs/);
    expect(() => new AzureBlobStore({ container: c, prefix: "../up" })).toThrow(/prefix/);
    expect(() => new AzureBlobStore({ container: c, prefix: "/abs" })).toThrow(/prefix/);
    expect(new AzureBlobStore({ container: c, prefix: "a/b///" }).prefix).toBe("a/b/");
    expect(new AzureBlobStore({ container: c }).prefix).toBe("");
    expect(new AzureBlobStore({ container: c }).containerName).toBe(c.containerName);
  });

  it("prepends the prefix to blob names and strips it from listed keys; blobs outside it are not seen", async () => {
    const c = await container("prefix");
    const a = new AzureBlobStore({ container: c, prefix: "team-a" });
    const b = new AzureBlobStore({ container: c, prefix: "team-b" });
    await a.put("x/1", chunks(enc.encode("a1")));
    await b.put("x/1", chunks(enc.encode("b1")));
    // Written by some other tool: not a valid key under the prefix, so never listed.
    await c.getBlockBlobClient("team-a/x//odd").upload("z", 1);
    expect(await blobNames(c)).toEqual(["team-a/x//odd", "team-a/x/1", "team-b/x/1"]);
    const listed: string[] = [];
    for await (const item of a.list("x/")) listed.push(item.key);
    expect(listed).toEqual(["x/1"]);
    expect(Buffer.from((await b.readSmall("x/1", { maxBytes: 10 }))?.bytes ?? []).toString()).toBe("b1");
    expect(a.blobName("x/1")).toBe("team-a/x/1");
    expect(await code(a.put(`${"k".repeat(1020)}`, chunks()))).toBe("INVALID_ARGUMENT");
  });

  it("the version is the blob's ETag and changes on every write", async () => {
    const c = await container("etag");
    const store = new AzureBlobStore({ container: c });
    const created = await store.conditionalPut("p", enc.encode("v1"), { ifAbsent: true });
    expect(created.status).toBe("written");
    const props = await c.getBlockBlobClient("p").getProperties();
    expect(created.status === "written" && created.version).toBe(props.etag);
    const read = await store.readSmall("p", { maxBytes: 10 });
    expect(read?.version).toBe(props.etag);
    await store.put("p", chunks(enc.encode("v1")));
    const again = await store.readSmall("p", { maxBytes: 10 });
    expect(again?.version).not.toBe(props.etag);
    expect(await store.conditionalPut("p", enc.encode("v2"), { ifVersion: props.etag as string })).toEqual({
      status: "conflict",
    });
  });

  it("readSmall of an empty blob returns empty bytes (no range on an empty blob)", async () => {
    const c = await container("empty");
    const store = new AzureBlobStore({ container: c });
    await store.put("e", chunks());
    const got = await store.readSmall("e", { maxBytes: 16 });
    expect(got?.bytes.byteLength).toBe(0);
    expect(got?.version).toMatch(/\S/);
    expect(await code(store.readSmall("e", { maxBytes: -1 }))).toMatch(/TypeError/);
  });

  it("readSmall of a large blob transfers only a range of maxBytes + 1", async () => {
    const c = await container("range");
    await new AzureBlobStore({ container: c }).put("big", chunks(randomFillSync(Buffer.alloc(8 * 1024 * 1024))));
    const proxy = await countingProxy(live.azurite.port);
    cleanups.push(() => proxy.close());
    // Same account and credential as the direct client; the requests go through the counting proxy.
    const viaProxy = new AzureBlobStore({
      container: new ContainerClient(
        `http://127.0.0.1:${proxy.port}/devstoreaccount1/${c.containerName}`,
        new StorageSharedKeyCredential(live.azurite.accountName, live.azurite.accountKey),
      ),
    });
    const err = await viaProxy.readSmall("big", { maxBytes: 1000 }).catch((e: unknown) => e);
    expect(SlipstreamError.is(err, "ARTIFACT_INVALID")).toBe(true);
    expect((err as Error).message).toMatch(/exceeds 1000 bytes \(found 8388608 bytes\)/);
    expect(proxy.responseBytes()).toBeGreaterThan(0);
    expect(proxy.responseBytes(), "headers plus at most 1001 body bytes").toBeLessThan(16 * 1024);
  });

  it("lists across pages (more than 1000 blobs)", async () => {
    const c = await container("pages");
    const store = new AzureBlobStore({ container: c, prefix: "p" });
    const keys = Array.from({ length: 1234 }, (_, i) => `many/${String(i).padStart(5, "0")}`);
    for (let i = 0; i < keys.length; i += 64) {
      await Promise.all(keys.slice(i, i + 64).map((k) => store.conditionalPut(k, enc.encode(k), { ifAbsent: true })));
    }
    const listed: string[] = [];
    for await (const item of store.list("many/")) {
      expect(item.size).toBe(item.key.length);
      listed.push(item.key);
    }
    expect(listed.sort()).toEqual(keys);
  });

  it("a missing container is a BACKEND error naming it, not an absent object", async () => {
    const store = new AzureBlobStore({ container: live.service.getContainerClient("does-not-exist") });
    const err = await store.get("k").catch((e: unknown) => e);
    expect(SlipstreamError.is(err, "BACKEND")).toBe(true);
    expect((err as Error).message).toMatch(/HTTP 404 ContainerNotFound/);
    expect(((err as Error).cause as { statusCode?: number }).statusCode).toBe(404);
    expect(await code(store.readSmall("k", { maxBytes: 1 }))).toBe("BACKEND");
    expect(await code(store.conditionalPut("k", enc.encode("x"), { ifVersion: '"0x1"' }))).toBe("BACKEND");
    expect(await code(store.put("k", chunks(enc.encode("x"))))).toBe("BACKEND");
  });

  it("refuses malformed conditions and bodies with TypeError", async () => {
    const c = await container("args");
    const store = new AzureBlobStore({ container: c });
    await expect(store.conditionalPut("k", enc.encode("x"), { ifVersion: "" })).rejects.toThrow(TypeError);
    await expect(store.conditionalPut("k", enc.encode("x"), { ifAbsent: false } as never)).rejects.toThrow(TypeError);
    await expect(store.conditionalPut("k", "x" as never, { ifAbsent: true })).rejects.toThrow(TypeError);
    expect(await blobNames(c)).toEqual([]);
  });
});
