import { mkdir, mkdtemp, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { exportArtifact, MANIFEST_FILE, SlipstreamError, verifyArtifact, WatchCursor } from "@slipstream/core";
import { afterEach, beforeEach, describe, expect, it } from "vitest";

let root: string;
beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), "slipstream-core-verify-"));
});
afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

async function makeArtifact(name = "a"): Promise<string> {
  const dir = join(root, name);
  await exportArtifact(dir, {
    backend: "test",
    backendVersion: "1",
    cursor: WatchCursor.fromRevision(9n),
    writePayload: async (dataDir) => {
      await writeFile(join(dataDir, "one.bin"), "first payload file");
      await mkdir(join(dataDir, "sub"));
      await writeFile(join(dataDir, "sub", "two.bin"), Buffer.alloc(4096, 3));
    },
  });
  return dir;
}

describe("verifyArtifact", () => {
  it("accepts a sound artifact and reports every file ok with progress", async () => {
    const dir = await makeArtifact();
    const seen: number[] = [];
    const v = await verifyArtifact(dir, { onProgress: (p) => seen.push(p.bytesDone) });
    expect(v.ok).toBe(true);
    expect(v.problems).toEqual([]);
    expect(v.manifest?.cursor.revision).toBe(9n);
    expect(v.files.map((f) => [f.path, f.status])).toEqual([
      ["data/one.bin", "ok"],
      ["data/sub/two.bin", "ok"],
    ]);
    expect(v.bytesChecked).toBe(18 + 4096);
    expect(seen.at(-1)).toBe(18 + 4096);
  });

  it("reports every defect at once: checksum, size, missing, undeclared, symlink", async () => {
    const dir = await makeArtifact();
    await writeFile(join(dir, "data", "one.bin"), "FIRST payload file"); // same size, other bytes
    await rm(join(dir, "data", "sub", "two.bin"));
    await writeFile(join(dir, "data", "smuggled"), "x");
    await writeFile(join(dir, "README"), "x");
    await symlink("/etc/hostname", join(dir, "data", "sub", "link"));
    const v = await verifyArtifact(dir);
    expect(v.ok).toBe(false);
    const kinds = v.problems.map((p) => `${p.kind}:${p.path}`);
    expect(kinds).toEqual([
      "undeclared:README",
      "undeclared:data/smuggled",
      "undeclared:data/sub/link",
      "checksum:data/one.bin",
      "missing:data/sub/two.bin",
    ]);
    expect(v.problems.find((p) => p.kind === "checksum")?.message).toMatch(/expected sha256 [0-9a-f]{64}, found/);
  });

  it("reports a size mismatch without hashing the file", async () => {
    const dir = await makeArtifact();
    await writeFile(join(dir, "data", "one.bin"), "short");
    const v = await verifyArtifact(dir);
    expect(v.problems).toEqual([
      { kind: "size", path: "data/one.bin", message: "payload file data/one.bin is 5 bytes; the manifest declares 18" },
    ]);
    expect(v.files[0]?.status).toBe("size");
  });

  it("reports a malformed or missing manifest as one manifest problem", async () => {
    const dir = await makeArtifact();
    await writeFile(join(dir, MANIFEST_FILE), '{"schemaVersion": 999}');
    const v = await verifyArtifact(dir);
    expect(v.ok).toBe(false);
    expect(v.manifest).toBeUndefined();
    expect(v.problems).toHaveLength(1);
    expect(v.problems[0]?.kind).toBe("manifest");
    expect(v.problems[0]?.message).toMatch(/schemaVersion 999/);
    await rm(join(dir, MANIFEST_FILE));
    const v2 = await verifyArtifact(dir);
    expect(v2.problems[0]?.message).toMatch(/no MANIFEST.json/);
  });

  it("throws ARTIFACT_INVALID for a missing directory or a file", async () => {
    await expect(verifyArtifact(join(root, "nope"))).rejects.toSatisfy((e) =>
      SlipstreamError.is(e, "ARTIFACT_INVALID"),
    );
    await writeFile(join(root, "file"), "x");
    await expect(verifyArtifact(join(root, "file"))).rejects.toThrow(/not a directory/);
  });

  it("reports ABORTED when the signal fires", async () => {
    const dir = await makeArtifact();
    const ctl = new AbortController();
    ctl.abort();
    await expect(verifyArtifact(dir, { signal: ctl.signal })).rejects.toSatisfy((e) =>
      SlipstreamError.is(e, "ABORTED"),
    );
  });
});
