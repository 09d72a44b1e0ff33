import { randomBytes } from "node:crypto";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { readManifest } from "@slipstream/core";
import { tempDir } from "@slipstream/testkit";
import { describe, expect, it } from "vitest";
import { makeTestArtifact, packArtifact, payloadLayout, tarHeaderBytes } from "../src/index.js";

describe("payloadLayout", () => {
  it("names each file's byte range in the packed tar, for plain, split, pax and non-ASCII names", async () => {
    await using dir = await tempDir("slipstream-layout-");
    const names = [
      "a",
      "x".repeat(95), // data/ + 95 = 100 bytes: the longest plain ustar name
      "y".repeat(96), // 101 bytes, split after data/
      `${"p/".repeat(70)}tail.bin`, // long, split into prefix + name
      `${"q".repeat(150)}/${"r".repeat(99)}`, // prefix over 155 bytes: pax
      "ünïcödé/ß.bin", // non-ASCII: pax
      "n/empty",
      "z/".repeat(200) + "deep", // very long: a pax record over 512 bytes
    ];
    const extra: Record<string, Uint8Array> = {};
    for (const [i, n] of names.entries()) extra[n] = n === "n/empty" ? new Uint8Array(0) : randomBytes(100 + i * 700);
    const src = join(dir.path, "a");
    await makeTestArtifact(src, { revision: 3n, extra });
    const { manifest, bytes } = await readManifest(src);
    const parts: Uint8Array[] = [];
    for await (const c of packArtifact(src, manifest, bytes)) parts.push(c);
    const tar = Buffer.concat(parts);
    const spans = payloadLayout(manifest, bytes);
    expect(spans).toHaveLength(manifest.files.length);
    for (const [i, f] of manifest.files.entries()) {
      const s = spans[i] as { offset: number; storedSize: number };
      expect(s.storedSize).toBe(f.size);
      expect(tar.subarray(s.offset, s.offset + s.storedSize).equals(await readFile(join(src, f.path))), f.path).toBe(
        true,
      );
    }
    expect(tarHeaderBytes("data/a")).toBe(512);
    expect(tarHeaderBytes("y".repeat(101))).toBe(1536);
  });
});
