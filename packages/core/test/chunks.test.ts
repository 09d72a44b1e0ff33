import { mkdtemp, open, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { ChunkPool, readChunks, SlipstreamError } from "../src/index.js";

const pattern = (n: number) => {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = (i * 17 + 3) & 0xff;
  return b;
};

let root: string;
beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), "slipstream-chunks-"));
});
afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

describe("readChunks", () => {
  it("reads a file whole or up to a limit; released chunks are read into again", async () => {
    const path = join(root, "f");
    const data = pattern(5 * 4096 + 77);
    await writeFile(path, data);
    const fh = await open(path, "r");
    try {
      const pool = new ChunkPool(4096);
      const got: Buffer[] = [];
      const memory = new Set<ArrayBufferLike>();
      for await (const c of readChunks(fh, pool)) {
        got.push(Buffer.from(c));
        memory.add(c.buffer);
        pool.release(c);
      }
      expect(Buffer.concat(got).equals(data)).toBe(true);
      expect(got.length).toBe(6);
      expect(memory.size).toBeLessThanOrEqual(2);
      const limited: Buffer[] = [];
      for await (const c of readChunks(fh, new ChunkPool(4096), { limit: 10_000 })) limited.push(Buffer.from(c));
      expect(Buffer.concat(limited).equals(data.subarray(0, 10_000))).toBe(true);
    } finally {
      await fh.close();
    }
  });

  it("stops with ABORTED on an aborted signal and leaves no read in flight when stopped early", async () => {
    const path = join(root, "f");
    await writeFile(path, pattern(64 * 1024));
    const fh = await open(path, "r");
    const ctl = new AbortController();
    const err = await (async () => {
      for await (const _ of readChunks(fh, new ChunkPool(4096), { signal: ctl.signal })) ctl.abort();
    })().catch((e: unknown) => e);
    expect(SlipstreamError.is(err, "ABORTED"), String(err)).toBe(true);
    const fds = (await readdir("/proc/self/fd")).length;
    for await (const _ of readChunks(fh, new ChunkPool(4096))) break;
    // The generator awaited its read ahead before it finished: closing now is safe.
    await fh.close();
    expect((await readdir("/proc/self/fd")).length).toBe(fds - 1);
  });
});
