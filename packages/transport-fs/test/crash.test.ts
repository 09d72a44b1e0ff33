import { randomFillSync } from "node:crypto";
import { readdir } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { tempDir } from "@slipstream/testkit";
import { ArtifactTransport, makeTestArtifact } from "@slipstream/transport";
import { afterEach, describe, expect, it } from "vitest";
import { FsBlobStore, RESERVED_PREFIX } from "../src/index.js";
import { killAtFreezePoint } from "./helpers.js";

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0)) await c();
});

const worker = fileURLToPath(new URL("./fixtures/crash-uploader.ts", import.meta.url));

async function killedAt(mode: "during-payload" | "before-pointer") {
  const dir = await tempDir("slipstream-crash-");
  cleanups.push(dir.cleanup);
  const remote = join(dir.path, "remote");
  const transport = new ArtifactTransport(new FsBlobStore(remote));
  await makeTestArtifact(join(dir.path, "a5"), { revision: 5n });
  expect((await transport.upload("k", join(dir.path, "a5"))).outcome).toBe("published");
  await makeTestArtifact(join(dir.path, "a9"), {
    revision: 9n,
    payload: randomFillSync(Buffer.alloc(8 * 1024 * 1024)),
  });
  const marker = join(dir.path, "marker");
  const said = await killAtFreezePoint(
    worker,
    [remote, join(dir.path, "a9"), mode, marker],
    marker,
    "the uploader",
    cleanups,
  );
  expect(said).not.toBe("finished without freezing");
  return { dir: dir.path, remote, transport };
}

async function listed(store: FsBlobStore, prefix: string): Promise<string[]> {
  const out: string[] = [];
  for await (const i of store.list(prefix)) out.push(i.key);
  return out.sort();
}

describe("an uploader killed with SIGKILL", () => {
  it("mid-payload: no partial payload is visible, the previous artifact still bootstraps, a retry publishes", async () => {
    const { dir, remote, transport } = await killedAt("during-payload");
    const store = new FsBlobStore(remote);
    const payloads = await listed(store, "k.payloads/");
    expect(payloads).toHaveLength(1);
    expect(payloads[0]).toMatch(/^k\.payloads\/0000000000000005-/);
    // The partial bytes exist only as an unlisted temp file.
    expect((await readdir(join(remote, "k.payloads"))).some((n) => n.startsWith(RESERVED_PREFIX))).toBe(true);
    expect(await store.removeStaleTempFiles(60_000)).toBe(0);
    expect(await store.removeStaleTempFiles(0)).toBe(1);
    expect((await readdir(join(remote, "k.payloads"))).some((n) => n.startsWith(RESERVED_PREFIX))).toBe(false);
    expect((await transport.download("k", join(dir, "b"))).cursor.revision).toBe(5n);
    expect((await transport.upload("k", join(dir, "a9"))).outcome).toBe("published");
    expect((await transport.download("k", join(dir, "c"))).cursor.revision).toBe(9n);
  });

  it("after the payload, before the pointer: the orphan is harmless, a retry publishes, prune collects the old one", async () => {
    const { dir, remote, transport } = await killedAt("before-pointer");
    const store = new FsBlobStore(remote);
    expect((await listed(store, "k.payloads/")).map((k) => k.slice(11, 27))).toEqual([
      "0000000000000005",
      "0000000000000009",
    ]);
    expect((await transport.manifest("k")).cursor.revision).toBe(5n);
    expect((await transport.download("k", join(dir, "b"))).cursor.revision).toBe(5n);
    expect((await transport.upload("k", join(dir, "a9"))).outcome).toBe("published");
    await new Promise((r) => setTimeout(r, 10));
    expect(await transport.prune("k", 0)).toHaveLength(1);
    expect((await transport.download("k", join(dir, "c"))).cursor.revision).toBe(9n);
  });
});
