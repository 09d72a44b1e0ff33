import { createHash, randomBytes } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { hashFile, SlipstreamError } from "@slipstream/core";
import { afterEach, beforeEach, describe, expect, it } from "vitest";

const sha256 = (b: Uint8Array): string => createHash("sha256").update(b).digest("hex");

describe("hashFile", () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "hashfile-"));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("hashes files of every size, reporting every byte, several at once", async () => {
    // Empty, below one read, exactly one read (1 MiB), and several reads with a remainder.
    const sizes = [0, 17, 1 << 20, 3 * (1 << 20) + 12_345];
    const files = await Promise.all(
      sizes.map(async (size, i) => {
        const bytes = randomBytes(size);
        const path = join(dir, `f${i}`);
        await writeFile(path, bytes);
        return { path, bytes };
      }),
    );
    // Concurrent calls share the pool of read buffers: each must still see only its own bytes.
    const results = await Promise.all(
      files.map(async (f) => {
        let reported = 0;
        const r = await hashFile(f.path, { onBytes: (n) => (reported += n) });
        return { ...r, reported };
      }),
    );
    results.forEach((r, i) => {
      const f = files[i] as { bytes: Buffer };
      expect(r.size).toBe(f.bytes.length);
      expect(r.reported).toBe(f.bytes.length);
      expect(r.sha256).toBe(sha256(f.bytes));
    });
  });

  it("refuses an aborted signal with ABORTED and a missing file with its errno", async () => {
    const path = join(dir, "f");
    await writeFile(path, randomBytes(4 << 20));
    const ctl = new AbortController();
    ctl.abort(new Error("stop"));
    const aborted = await hashFile(path, { signal: ctl.signal }).catch((e: unknown) => e);
    expect(SlipstreamError.is(aborted, "ABORTED")).toBe(true);
    // Aborted midway: the next chunk is not hashed.
    const mid = new AbortController();
    const midway = await hashFile(path, { signal: mid.signal, onBytes: () => mid.abort() }).catch((e: unknown) => e);
    expect(SlipstreamError.is(midway, "ABORTED")).toBe(true);
    await expect(hashFile(join(dir, "missing"))).rejects.toMatchObject({ code: "ENOENT" });
    // The file itself still hashes afterwards (buffers returned to the pool intact).
    expect((await hashFile(path)).size).toBe(4 << 20);
  });
});
