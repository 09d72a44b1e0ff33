import { fsync } from "node:fs";
import {
  mkdir,
  mkdtemp,
  open,
  readdir,
  readFile,
  readlink,
  rename,
  rm,
  stat,
  symlink,
  writeFile,
} from "node:fs/promises";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import {
  checkDestAvailable,
  cursorMismatch,
  expectBackend,
  exportArtifact,
  hashFile,
  MANIFEST_FILE,
  readManifest,
  renameIntoPlace,
  SlipstreamError,
  verifyAndStageImport,
  WatchCursor,
} from "@slipstream/core";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";

let root: string;
beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), "slipstream-core-artifact-"));
});
afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

const cursor = WatchCursor.fromRevision(7n);
const opts = {
  backend: "test",
  backendVersion: "1",
  cursor,
  writePayload: async (dataDir: string) => {
    await writeFile(join(dataDir, "fold.bin"), "hello fold");
    await mkdir(join(dataDir, "sub"));
    await writeFile(join(dataDir, "sub", "part.bin"), Buffer.alloc(3000, 7));
  },
};
const importOpts = { checkBackend: expectBackend("test", ["1"]) };

async function expectArtifactInvalid(p: Promise<unknown>, pattern: RegExp): Promise<void> {
  let caught: unknown;
  try {
    await p;
  } catch (err) {
    caught = err;
  }
  expect(SlipstreamError.is(caught, "ARTIFACT_INVALID"), `got ${String(caught)}`).toBe(true);
  expect((caught as Error).message).toMatch(pattern);
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

async function leftovers(dir: string): Promise<string[]> {
  return (await readdir(dir)).filter((n) => n.startsWith(".slipstream-"));
}

/**
 * Records the path of every FileHandle.sync (fsync) while `fn` runs, through /proc/self/fd;
 * the fsyncs still happen.
 */
async function fsyncedPaths(fn: (synced: string[]) => Promise<void>): Promise<void> {
  const probe = await open(join(root, ".probe"), "w");
  const proto = Object.getPrototypeOf(probe) as { sync: () => Promise<void> };
  await probe.close();
  await rm(join(root, ".probe"));
  const synced: string[] = [];
  const spy = vi.spyOn(proto, "sync").mockImplementation(async function (this: { fd: number }) {
    synced.push(await readlink(`/proc/self/fd/${this.fd}`));
    await new Promise<void>((resolve, reject) => fsync(this.fd, (e) => (e ? reject(e) : resolve())));
  });
  try {
    await fn(synced);
  } finally {
    spy.mockRestore();
  }
}

describe("exportArtifact", () => {
  it("seals payload files with hashes and the manifest", async () => {
    const dest = join(root, "art");
    const m = await exportArtifact(dest, opts);
    expect(m.files.map((f) => f.path)).toEqual(["data/fold.bin", "data/sub/part.bin"]);
    expect(m.files[0]?.size).toBe(10);
    expect(m.files[0]?.sha256).toBe((await hashFile(join(dest, "data/fold.bin"))).sha256);
    const { manifest } = await readManifest(dest);
    expect(manifest.cursor.equals(cursor)).toBe(true);
    expect(await leftovers(root)).toEqual([]);
  });

  it("records the exporter in the manifest when given; a bad one is refused before anything is staged", async () => {
    const dest = join(root, "art");
    const m = await exportArtifact(dest, { ...opts, exporter: "node-a:4242" });
    expect(m.exporter).toBe("node-a:4242");
    expect((await readManifest(dest)).manifest.exporter).toBe("node-a:4242");
    expect(await readFile(join(dest, MANIFEST_FILE), "utf8")).toContain('"exporter": "node-a:4242"');
    const plain = join(root, "plain");
    expect("exporter" in (await exportArtifact(plain, opts))).toBe(false);
    expect(await readFile(join(plain, MANIFEST_FILE), "utf8")).not.toContain("exporter");

    const bad = join(root, "bad");
    let written = false;
    const err = await exportArtifact(bad, {
      ...opts,
      exporter: "x".repeat(300),
      writePayload: async () => {
        written = true;
      },
    }).catch((e: unknown) => e);
    expect(SlipstreamError.is(err, "INVALID_ARGUMENT"), String(err)).toBe(true);
    expect((err as Error).message).toMatch(/longer than 256/);
    expect(written).toBe(false);
    expect(await exists(bad)).toBe(false);
    await expect(exportArtifact(bad, { ...opts, exporter: 7 as unknown as string })).rejects.toThrow(TypeError);
    expect(await leftovers(root)).toEqual([]);
  });

  it("fsyncs every payload file except those the backend says are durable, and their directories", async () => {
    await fsyncedPaths(async (synced) => {
      const all = async (name: string, durable?: (path: string) => boolean) => {
        synced.length = 0;
        const m = await exportArtifact(join(root, name), { ...opts, ...(durable ? { durable } : {}) });
        return { names: synced.map((p) => basename(p)), m };
      };
      const plain = await all("plain");
      expect(plain.names).toEqual(expect.arrayContaining(["fold.bin", "part.bin", "sub", "data"]));
      const linked = await all("linked", (path) => path === "sub/part.bin");
      expect(linked.names).toContain("fold.bin");
      expect(linked.names).not.toContain("part.bin");
      expect(linked.names).toEqual(expect.arrayContaining(["sub", "data"]));
      // The manifest is the same either way.
      expect(linked.m.files).toEqual(plain.m.files);
    });
  });

  it("refuses a non-empty destination and leaves it untouched", async () => {
    const dest = join(root, "art");
    await mkdir(dest);
    await writeFile(join(dest, "stray"), "keep me");
    await expectArtifactInvalid(exportArtifact(dest, opts), /not empty/);
    expect(await readFile(join(dest, "stray"), "utf8")).toBe("keep me");
    expect(await leftovers(root)).toEqual([]);
  });

  it("refuses a destination that is a file and one without a parent", async () => {
    await writeFile(join(root, "file"), "x");
    await expectArtifactInvalid(exportArtifact(join(root, "file"), opts), /not a directory/);
    await expectArtifactInvalid(exportArtifact(join(root, "missing", "art"), opts), /no parent directory/);
  });

  it("refuses a symlink in the payload and cleans its stage", async () => {
    const dest = join(root, "art");
    await expectArtifactInvalid(
      exportArtifact(dest, {
        ...opts,
        writePayload: async (d) => {
          await writeFile(join(d, "real"), "x");
          await symlink(join(d, "real"), join(d, "link"));
        },
      }),
      /non-regular file: link/,
    );
    expect(await exists(dest)).toBe(false);
    expect(await leftovers(root)).toEqual([]);
  });

  it("fails closed when the staged copy does not verify", async () => {
    const dest = join(root, "art");
    await expect(
      exportArtifact(dest, {
        ...opts,
        verifyStaged: async (_stage, m) => {
          throw cursorMismatch(WatchCursor.fromRevision(3n), m);
        },
      }),
    ).rejects.toThrow(/disagrees with manifest cursor/);
    expect(await exists(dest)).toBe(false);
    expect(await leftovers(root)).toEqual([]);
  });

  it("accepts an empty directory as destination and exports an empty payload", async () => {
    const dest = join(root, "art");
    await mkdir(dest);
    const m = await exportArtifact(dest, { ...opts, cursor: WatchCursor.none(), writePayload: async () => {} });
    expect(m.files).toEqual([]);
    expect(m.cursor.isNone).toBe(true);
  });

  it("stops on abort", async () => {
    const ctl = new AbortController();
    ctl.abort();
    const dest = join(root, "art");
    await expect(exportArtifact(dest, { ...opts, signal: ctl.signal })).rejects.toSatisfy((e: unknown) =>
      SlipstreamError.is(e, "ABORTED"),
    );
    expect(await exists(dest)).toBe(false);
  });
});

describe("verifyAndStageImport", () => {
  let art: string;
  beforeEach(async () => {
    art = join(root, "art");
    await exportArtifact(art, opts);
  });

  it("stages the payload contents at the destination root", async () => {
    const dest = join(root, "fold");
    const progress: number[] = [];
    const m = await verifyAndStageImport(art, dest, {
      ...importOpts,
      onProgress: (p) => progress.push(p.bytesDone),
    });
    expect(m.cursor.revision).toBe(7n);
    expect(await readFile(join(dest, "fold.bin"), "utf8")).toBe("hello fold");
    expect((await stat(join(dest, "sub", "part.bin"))).size).toBe(3000);
    expect(progress.at(-1)).toBe(3010);
    expect(await leftovers(root)).toEqual([]);
  });

  it('"move" of durable files fsyncs the directories they land in, not each file again', async () => {
    await fsyncedPaths(async (synced) => {
      const moves = async (name: string, durable: boolean) => {
        const from = join(root, `${name}-art`);
        await exportArtifact(from, opts);
        synced.length = 0;
        await verifyAndStageImport(from, join(root, name), { ...importOpts, transfer: "move", durable });
        return synced.map((p) => basename(p));
      };
      const plain = await moves("plain", false);
      expect(plain).toEqual(expect.arrayContaining(["fold.bin", "part.bin"]));
      const durable = await moves("durable", true);
      expect(durable).not.toContain("fold.bin");
      expect(durable).not.toContain("part.bin");
      expect(durable).toContain("sub");
      expect(await readFile(join(root, "durable", "sub", "part.bin"))).toEqual(Buffer.alloc(3000, 7));
    });
  });

  const tamper: [string, () => Promise<void>, RegExp][] = [
    [
      "a flipped byte",
      async () => {
        const p = join(art, "data/sub/part.bin");
        const b = await readFile(p);
        b[1500] = (b[1500] ?? 0) ^ 0xff;
        await writeFile(p, b);
      },
      /checksum mismatch/,
    ],
    [
      "a truncated file",
      async () => writeFile(join(art, "data/fold.bin"), "hello"),
      /is 5 bytes; the manifest declares 10/,
    ],
    ["an undeclared file", async () => writeFile(join(art, "data/smuggled"), "x"), /undeclared file: data\/smuggled/],
    ["an undeclared top-level file", async () => writeFile(join(art, "extra"), "x"), /undeclared file: extra/],
    ["a missing file", async () => rm(join(art, "data/fold.bin")), /payload file missing: data\/fold.bin/],
    [
      "a symlink in the payload",
      async () => {
        await rm(join(art, "data/fold.bin"));
        await writeFile(join(root, "outside"), "hello fold");
        await symlink(join(root, "outside"), join(art, "data/fold.bin"));
      },
      /non-regular file/,
    ],
    ["a missing manifest", async () => rm(join(art, MANIFEST_FILE)), /no MANIFEST.json/],
    [
      "a symlinked manifest",
      async () => {
        await rename(join(art, MANIFEST_FILE), join(root, "elsewhere.json"));
        await symlink(join(root, "elsewhere.json"), join(art, MANIFEST_FILE));
      },
      /is a symlink/,
    ],
    [
      "a wrong backend",
      async () => {
        const p = join(art, MANIFEST_FILE);
        await writeFile(p, (await readFile(p, "utf8")).replace('"test"', '"other"'));
      },
      /backend is "other"; expected "test"/,
    ],
    [
      "an unreadable format generation",
      async () => {
        const p = join(art, MANIFEST_FILE);
        await writeFile(p, (await readFile(p, "utf8")).replace('"backendVersion": "1"', '"backendVersion": "999"'));
      },
      /backendVersion "999"/,
    ],
    [
      "schemaVersion 999",
      async () => {
        const p = join(art, MANIFEST_FILE);
        await writeFile(p, (await readFile(p, "utf8")).replace('"schemaVersion": 1', '"schemaVersion": 999'));
      },
      /schemaVersion 999/,
    ],
  ];

  it.each(tamper)("rejects %s and leaves nothing at the destination", async (_n, doTamper, pattern) => {
    await doTamper();
    const dest = join(root, "fold");
    await expectArtifactInvalid(verifyAndStageImport(art, dest, importOpts), pattern);
    expect(await exists(dest)).toBe(false);
    expect(await leftovers(root)).toEqual([]);
  });

  it("lets the backend refuse the staged copy (cursor mismatch)", async () => {
    const dest = join(root, "fold");
    await expectArtifactInvalid(
      verifyAndStageImport(art, dest, {
        ...importOpts,
        verifyStaged: async (_s, m) => {
          throw cursorMismatch(WatchCursor.fromRevision(999n), m);
        },
      }),
      /payload cursor 00000000000003e7 disagrees/,
    );
    expect(await exists(dest)).toBe(false);
  });

  it("refuses a non-empty destination, leaves the stray, and a retry to a fresh dest works", async () => {
    const dest = join(root, "fold");
    await mkdir(dest);
    await writeFile(join(dest, "stray"), "mine");
    await expectArtifactInvalid(verifyAndStageImport(art, dest, importOpts), /not empty/);
    expect(await readdir(dest)).toEqual(["stray"]);
    const fresh = join(root, "fold2");
    await verifyAndStageImport(art, fresh, importOpts);
    expect(await exists(join(fresh, "fold.bin"))).toBe(true);
  });
});

describe("destination helpers", () => {
  it("checkDestAvailable accepts absent and empty", async () => {
    await checkDestAvailable(join(root, "absent"));
    await mkdir(join(root, "empty"));
    await checkDestAvailable(join(root, "empty"));
  });

  it("renameIntoPlace refuses to replace a destination that appeared", async () => {
    await mkdir(join(root, "stage"));
    await writeFile(join(root, "stage", "x"), "1");
    await mkdir(join(root, "dest"));
    await writeFile(join(root, "dest", "y"), "2");
    await expectArtifactInvalid(renameIntoPlace(join(root, "stage"), join(root, "dest")), /appeared/);
    expect(await readdir(join(root, "dest"))).toEqual(["y"]);
    await rm(join(root, "dest"), { recursive: true });
    await mkdir(join(root, "dest"));
    await renameIntoPlace(join(root, "stage"), join(root, "dest"));
    expect(await readdir(join(root, "dest"))).toEqual(["x"]);
  });
});

describe("aborts and I/O failures are typed", () => {
  const big = {
    backend: "test",
    backendVersion: "1",
    cursor: WatchCursor.fromRevision(1n),
    writePayload: async (dataDir: string) => {
      await writeFile(join(dataDir, "big.bin"), Buffer.alloc(24 * 1024 * 1024, 1));
    },
  };

  it("an abort in the middle of sealing is ABORTED and leaves nothing", async () => {
    const ctl = new AbortController();
    const dest = join(root, "art");
    const err = await exportArtifact(dest, {
      ...big,
      signal: ctl.signal,
      writePayload: async (d) => {
        await big.writePayload(d);
        ctl.abort();
      },
    }).catch((e: unknown) => e);
    expect(SlipstreamError.is(err, "ABORTED"), String(err)).toBe(true);
    expect(await exists(dest)).toBe(false);
    expect(await leftovers(root)).toEqual([]);
  });

  it("an abort in the middle of an import copy is ABORTED and leaves nothing", async () => {
    const art = join(root, "art");
    await exportArtifact(art, big);
    const ctl = new AbortController();
    const dest = join(root, "fold");
    const err = await verifyAndStageImport(art, dest, {
      ...importOpts,
      signal: ctl.signal,
      onProgress: (p) => {
        if (p.bytesDone > 0) ctl.abort();
      },
    }).catch((e: unknown) => e);
    expect(SlipstreamError.is(err, "ABORTED"), String(err)).toBe(true);
    expect(await exists(dest)).toBe(false);
    expect(await leftovers(root)).toEqual([]);
  });

  it("a missing artifact directory is a typed error", async () => {
    const err = await verifyAndStageImport(join(root, "nope"), join(root, "fold"), importOpts).catch((e: unknown) => e);
    expect(SlipstreamError.is(err, "ARTIFACT_INVALID"), String(err)).toBe(true);
  });

  it("a payload writer's own file-system error becomes BACKEND", async () => {
    const err = await exportArtifact(join(root, "art"), {
      ...big,
      writePayload: async (d) => {
        await writeFile(join(d, "missing-dir", "x"), "x");
      },
    }).catch((e: unknown) => e);
    expect(SlipstreamError.is(err, "BACKEND"), String(err)).toBe(true);
    expect(await leftovers(root)).toEqual([]);
  });
});
