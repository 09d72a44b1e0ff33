import { generateKeyPairSync } from "node:crypto";
import { readdir } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { manifestSigner } from "@slipstream/core";
import { MemorySnapshotStore } from "@slipstream/fold";
import { tempDir } from "@slipstream/testkit";
import { ArtifactTransport, FaultInjectingBlobStore, importRemote, RESUME_PREFIX } from "@slipstream/transport";
import { afterEach, describe, expect, it } from "vitest";
import { FsBlobStore } from "../src/index.js";
import { dump, foldWith, killAtFreezePoint } from "./helpers.js";

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0)) await c();
});

const worker = fileURLToPath(new URL("./fixtures/crash-downloader.ts", import.meta.url));

describe("a bootstrap killed with SIGKILL half-way through a chunked download", () => {
  it("resumes on the next start from the last verified chunk, fetching only the missing ones", async () => {
    const dir = await tempDir("slipstream-crash-resume-");
    cleanups.push(dir.cleanup);
    const remote = join(dir.path, "remote");
    const scratch = join(dir.path, "scratch");
    const key = generateKeyPairSync("ed25519");
    const fold = await foldWith(20_000);
    const exported = join(dir.path, "exported");
    await fold.exportTo(exported);
    const up = await new ArtifactTransport(new FsBlobStore(remote), {
      signer: manifestSigner(key.privateKey),
      chunkBytes: 16 * 1024,
    }).upload("k", exported);
    const chunks = up.manifest.files.reduce((n, f) => n + (f.chunks?.length ?? 0), 0);
    expect(chunks).toBeGreaterThan(12);

    const marker = join(dir.path, "marker");
    const said = await killAtFreezePoint(
      worker,
      [remote, scratch, join(dir.path, "node-a"), marker, "7"],
      marker,
      "the downloader",
      cleanups,
    );
    expect(said).toBe("7");
    // The killed run left its resume stage (with the journal of 7 chunks) in scratchDir.
    expect((await readdir(scratch)).filter((n) => n.startsWith(RESUME_PREFIX))).toHaveLength(1);

    const store = new FaultInjectingBlobStore(new FsBlobStore(remote));
    const transport = new ArtifactTransport(store, { trust: { keys: [{ publicKey: key.publicKey }] } });
    const node = await importRemote({
      transport,
      key: "k",
      scratchDir: scratch,
      destDir: join(dir.path, "node-b"),
      open: (d, dest) => MemorySnapshotStore.import(d, dest),
    });
    expect(await dump(node)).toEqual(await dump(fold));
    expect(node.cursor.equals(fold.cursor)).toBe(true);
    expect(store.calls.filter((c) => c.startsWith("readRange"))).toHaveLength(chunks - 7);
    // Nothing is left behind: no stage, no bootstrap folder.
    expect(await readdir(scratch)).toEqual([]);
  });
});
