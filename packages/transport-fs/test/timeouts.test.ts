import { mkdir, readdir } from "node:fs/promises";
import { join } from "node:path";
import { SlipstreamError } from "@slipstream/core";
import { tempDir } from "@slipstream/testkit";
import {
  ArtifactTransport,
  type BlobOperation,
  type BlobStore,
  FaultInjectingBlobStore,
  makeTestArtifact,
  stallUntilAborted,
} from "@slipstream/transport";
import { afterEach, describe, expect, it } from "vitest";
import { FsBlobStore } from "../src/index.js";

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0)) await c();
});

// Every remote await is bounded: stall one store operation and the public call that needs
// it fails with TIMEOUT (or ABORTED when the caller gives up first), leaving no temp files.
describe("bounded waits", () => {
  async function world(stalled: BlobOperation) {
    const root = await tempDir("slipstream-timeouts-");
    cleanups.push(root.cleanup);
    const store = new FaultInjectingBlobStore(new FsBlobStore(join(root.path, "remote")));
    const transport = new ArtifactTransport(store, { timeoutMs: 250 });
    await makeTestArtifact(join(root.path, "a5"), { revision: 5n });
    await makeTestArtifact(join(root.path, "a9"), { revision: 9n });
    expect((await transport.upload("k", join(root.path, "a5"))).outcome).toBe("published");
    await mkdir(join(root.path, "out"));
    store.hook = (op, _key, signal) => (op === stalled ? stallUntilAborted(signal) : undefined);
    return { root: root.path, store, transport };
  }

  const cases: [BlobOperation, string, (w: Awaited<ReturnType<typeof world>>) => Promise<unknown>][] = [
    ["readSmall", "manifest()", (w) => w.transport.manifest("k")],
    ["readSmall", "upload()", (w) => w.transport.upload("k", join(w.root, "a9"))],
    ["put", "upload() of the payload", (w) => w.transport.upload("k", join(w.root, "a9"))],
    ["conditionalPut", "upload() of the pointer", (w) => w.transport.upload("k", join(w.root, "a9"))],
    ["get", "download()", (w) => w.transport.download("k", join(w.root, "out", "dest"))],
    ["list", "prune()", (w) => w.transport.prune("k", 0)],
  ];
  for (const [op, call, fn] of cases) {
    it(`a stalled ${op} makes ${call} fail with TIMEOUT`, async () => {
      const w = await world(op);
      const err = await fn(w).catch((e: unknown) => e);
      expect(SlipstreamError.is(err, "TIMEOUT"), String(err)).toBe(true);
      expect(await readdir(join(w.root, "out"))).toEqual([]);
      w.store.hook = () => {};
      expect((await w.transport.manifest("k")).cursor.revision).toBe(5n);
    });
  }

  it("the caller's signal ends a stalled call with ABORTED", async () => {
    const w = await world("readSmall");
    const ctl = new AbortController();
    const pending = w.transport.manifest("k", { signal: ctl.signal }).catch((e: unknown) => e);
    ctl.abort();
    expect(SlipstreamError.is(await pending, "ABORTED")).toBe(true);
  });
});

// A store that reads its body ahead and then uploads slowly (like a parallel multipart
// upload on a slow link) reports accepted parts through `onProgress`; that keeps the
// transfer's idle deadline from firing while no new body bytes are pulled.
describe("progress reported by the store", () => {
  async function slowUpload(reportProgress: boolean) {
    const root = await tempDir("slipstream-progress-");
    cleanups.push(root.cleanup);
    const inner = new FsBlobStore(join(root.path, "remote"));
    const slow: BlobStore = {
      capabilities: inner.capabilities,
      get: (k, o) => inner.get(k, o),
      readSmall: (k, o) => inner.readSmall(k, o),
      conditionalPut: (k, b, c, o) => inner.conditionalPut(k, b, c, o),
      list: (p, o) => inner.list(p, o),
      delete: (k, o) => inner.delete(k, o),
      async put(key, body, opts) {
        const chunks: Uint8Array[] = [];
        for await (const c of body) {
          chunks.push(c);
          if (chunks.length > 1) continue;
          // After the first part: 500 ms without pulling a byte (idle bound 250 ms) while
          // "parts" complete every 100 ms.
          for (let part = 0; part < 5; part++) {
            await new Promise((r) => setTimeout(r, 100));
            if (reportProgress) opts?.onProgress?.();
          }
        }
        await inner.put(
          key,
          (async function* () {
            yield* chunks;
          })(),
          opts,
        );
      },
    };
    const transport = new ArtifactTransport(slow, { timeoutMs: 250 });
    await makeTestArtifact(join(root.path, "a5"), { revision: 5n });
    return transport.upload("k", join(root.path, "a5"));
  }

  it("a slow store that reports progress completes", async () => {
    expect((await slowUpload(true)).outcome).toBe("published");
  });

  it("the same store without progress reports times out", async () => {
    const err = await slowUpload(false).catch((e: unknown) => e);
    expect(SlipstreamError.is(err, "TIMEOUT"), String(err)).toBe(true);
  });
});
