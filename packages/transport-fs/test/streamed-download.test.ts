import { mkdir, readdir } from "node:fs/promises";
import { join } from "node:path";
import { hashFile } from "@slipstream/core";
import { tempDir } from "@slipstream/testkit";
import {
  ArtifactTransport,
  type BlobBody,
  type BlobOpOptions,
  FaultInjectingBlobStore,
  makeTestArtifact,
} from "@slipstream/transport";
import { describe, expect, it } from "vitest";
import { FsBlobStore } from "../src/index.js";

/** Every path under `dir`, relative, sorted. */
async function tree(dir: string, rel = ""): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(join(dir, rel), { withFileTypes: true })) {
    const p = rel ? `${rel}/${e.name}` : e.name;
    out.push(p);
    if (e.isDirectory()) out.push(...(await tree(dir, p)));
  }
  return out.sort();
}

/** Looks at the download's work folder after the payload's last chunk, before the download ends. */
class PeekingStore extends FaultInjectingBlobStore {
  seen: string[] | undefined;
  constructor(
    inner: FsBlobStore,
    readonly parent: string,
  ) {
    super(inner);
  }
  override async get(key: string, opts?: BlobOpOptions): Promise<BlobBody | undefined> {
    const got = await super.get(key, opts);
    if (!got || !key.includes(".payloads/")) return got;
    const peek = async () => {
      this.seen = await tree(this.parent);
    };
    return {
      size: got.size,
      body: (async function* () {
        yield* got.body;
        await peek();
      })(),
    };
  }
}

describe("ArtifactTransport.download streams", () => {
  it("unpacks the payload as it arrives: no tar is ever written beside the destination", async () => {
    await using tmp = await tempDir("slipstream-streamed-");
    const payload = new Uint8Array(3 * 1024 * 1024).map((_, i) => (i * 7) & 0xff);
    await makeTestArtifact(join(tmp.path, "a"), { revision: 9n, payload });
    const parent = join(tmp.path, "downloads");
    await mkdir(parent);
    const store = new PeekingStore(new FsBlobStore(join(tmp.path, "remote")), parent);
    const transport = new ArtifactTransport(store);
    expect((await transport.upload("k", join(tmp.path, "a"))).outcome).toBe("published");
    const manifest = await transport.download("k", join(parent, "dest"));

    // While the last bytes were arriving, the stage already held the unpacked files.
    expect(store.seen?.some((p) => /\.slipstream-download-[^/]+\/artifact\/data\//.test(p))).toBe(true);
    expect(store.seen?.filter((p) => p.endsWith(".tar"))).toEqual([]);
    expect(await tree(parent)).toEqual(
      ["dest", "dest/MANIFEST.json", "dest/data", ...manifest.files.map((f) => `dest/${f.path}`)].sort(),
    );
    for (const f of manifest.files) {
      expect(await hashFile(join(parent, "dest", f.path))).toEqual({ size: f.size, sha256: f.sha256 });
    }
  });
});
