import { appendFile, mkdir, readdir, readFile, rm, stat, truncate, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { MANIFEST_FILE, readManifest, SlipstreamError } from "@slipstream/core";
import { tempDir } from "@slipstream/testkit";
import * as tarStream from "tar-stream";
import { afterEach, describe, expect, it } from "vitest";
import { buildTar, makeTestArtifact, packArtifact, unpackArtifact } from "../src/index.js";

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0)) await c();
});
async function scratch(): Promise<string> {
  const d = await tempDir("slipstream-tar-");
  cleanups.push(d.cleanup);
  return d.path;
}

/**
 * Packs into `out`. With `reuseBuffers`, as a sequential consumer must: each chunk is copied
 * before the next is pulled (the chunk's memory may then be reused).
 */
async function packToFile(artifactDir: string, out: string, reuseBuffers = false): Promise<void> {
  const { manifest, bytes } = await readManifest(artifactDir);
  const chunks: Uint8Array[] = [];
  for await (const c of packArtifact(artifactDir, manifest, bytes, { reuseBuffers })) {
    chunks.push(reuseBuffers ? Buffer.from(c) : c);
  }
  await writeFile(out, Buffer.concat(chunks));
}

async function entriesOf(tarFile: string): Promise<tarStream.Header[]> {
  const extract = tarStream.extract();
  const headers: tarStream.Header[] = [];
  const done = (async () => {
    for await (const entry of extract) {
      headers.push({ ...entry.header });
      entry.resume();
    }
  })();
  extract.end(await readFile(tarFile));
  await done;
  return headers;
}

async function expectCode(p: Promise<unknown>, code: string, text?: RegExp): Promise<void> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(SlipstreamError.is(err), String(err)).toBe(true);
  expect((err as SlipstreamError).code).toBe(code);
  if (text) expect((err as SlipstreamError).message).toMatch(text);
}

describe("packArtifact reading files into reused buffers (a sequential consumer)", () => {
  it("packs the same bytes as fresh reads, from a couple of buffers however large the files", async () => {
    const dir = await scratch();
    const big = Buffer.alloc(4 * 1024 * 1024 + 17);
    for (let i = 0; i < big.length; i++) big[i] = (i * 7) & 0xff;
    await makeTestArtifact(join(dir, "a"), {
      revision: 5n,
      payload: big,
      extra: { "empty.bin": new Uint8Array(), "x/small.bin": new Uint8Array([1, 2, 3]) },
    });
    await packToFile(join(dir, "a"), join(dir, "fresh.tar"));
    await packToFile(join(dir, "a"), join(dir, "pooled.tar"), true);
    expect((await readFile(join(dir, "pooled.tar"))).equals(await readFile(join(dir, "fresh.tar")))).toBe(true);
    const { manifest, bytes } = await readManifest(join(dir, "a"));
    await mkdir(join(dir, "out"));
    await unpackArtifact(join(dir, "pooled.tar"), join(dir, "out"), { manifest, manifestBytes: bytes });
    expect((await readFile(join(dir, "out", "data", "fold.snap"))).equals(big)).toBe(true);

    // The big file's bytes arrive in ≥ 4 chunks whose memory comes from at most 3 buffers.
    const seen = new Set<ArrayBufferLike>();
    let large = 0;
    for await (const c of packArtifact(join(dir, "a"), manifest, bytes, { reuseBuffers: true })) {
      if (c.byteLength >= 512 * 1024) {
        large++;
        seen.add(c.buffer);
      }
    }
    expect(large).toBeGreaterThanOrEqual(4);
    expect(seen.size).toBeLessThanOrEqual(3);
  });

  it("refuses a file that grew or shrank, and closes every file when the consumer stops early", async () => {
    const dir = await scratch();
    await makeTestArtifact(join(dir, "a"), { revision: 1n });
    await appendFile(join(dir, "a", "data", "fold.snap"), "more");
    await expectCode(packToFile(join(dir, "a"), join(dir, "a.tar"), true), "ARTIFACT_INVALID", /grew/);
    await makeTestArtifact(join(dir, "b"), { revision: 1n, payload: Buffer.alloc(2 * 1024 * 1024 + 5, 1) });
    await truncate(join(dir, "b", "data", "fold.snap"), 2);
    await expectCode(packToFile(join(dir, "b"), join(dir, "b.tar"), true), "ARTIFACT_INVALID", /declares/);
    await makeTestArtifact(join(dir, "c"), { revision: 1n, payload: Buffer.alloc(3 * 1024 * 1024, 2) });
    const { manifest, bytes } = await readManifest(join(dir, "c"));
    const fds = async () => (await readdir("/proc/self/fd")).length;
    const before = await fds();
    for (let i = 0; i < 5; i++) {
      let n = 0;
      for await (const _ of packArtifact(join(dir, "c"), manifest, bytes, { reuseBuffers: true })) {
        if (++n === 4) break;
      }
    }
    expect(await fds()).toBeLessThanOrEqual(before);
  });
});

describe("packArtifact", () => {
  it("writes MANIFEST.json, the needed directories and the declared files with normalised headers", async () => {
    const dir = await scratch();
    const created = new Date("2026-03-04T05:06:07.000Z");
    const m = await makeTestArtifact(join(dir, "a"), {
      revision: 9n,
      now: created,
      extra: { "empty.bin": new Uint8Array(), "x/y/z.bin": new Uint8Array([1, 2, 3]) },
    });
    await packToFile(join(dir, "a"), join(dir, "a.tar"));
    const headers = await entriesOf(join(dir, "a.tar"));
    expect(headers.map((h) => `${h.type} ${h.name}`)).toEqual([
      `file ${MANIFEST_FILE}`,
      "directory data/",
      "directory data/x/",
      "directory data/x/y/",
      "file data/empty.bin",
      "file data/fold.snap",
      "file data/x/y/z.bin",
    ]);
    for (const h of headers) {
      expect(h.mode).toBe(h.type === "directory" ? 0o755 : 0o644);
      expect(h.uid).toBe(0);
      expect(h.gid).toBe(0);
      expect(h.mtime?.getTime()).toBe(created.getTime());
    }
    expect(m.files.map((f) => f.path)).toEqual(["data/empty.bin", "data/fold.snap", "data/x/y/z.bin"]);
    // Deterministic: the same artifact packs to the same bytes.
    await packToFile(join(dir, "a"), join(dir, "b.tar"));
    expect((await readFile(join(dir, "a.tar"))).equals(await readFile(join(dir, "b.tar")))).toBe(true);
  });

  it("packs ignoring the files' own modes (a 0777 file arrives 0644)", async () => {
    const dir = await scratch();
    await makeTestArtifact(join(dir, "a"), { revision: 1n });
    const { chmod } = await import("node:fs/promises");
    await chmod(join(dir, "a", "data", "fold.snap"), 0o777);
    await packToFile(join(dir, "a"), join(dir, "a.tar"));
    const h = (await entriesOf(join(dir, "a.tar"))).find((e) => e.name === "data/fold.snap");
    expect(h?.mode).toBe(0o644);
  });

  it("refuses a file that grew or shrank after the manifest was sealed", async () => {
    const dir = await scratch();
    await makeTestArtifact(join(dir, "a"), { revision: 1n });
    await appendFile(join(dir, "a", "data", "fold.snap"), "more");
    await expectCode(packToFile(join(dir, "a"), join(dir, "a.tar")), "ARTIFACT_INVALID", /grew/);
    await makeTestArtifact(join(dir, "b"), { revision: 1n });
    await truncate(join(dir, "b", "data", "fold.snap"), 2);
    await expectCode(packToFile(join(dir, "b"), join(dir, "b.tar")), "ARTIFACT_INVALID", /declares/);
  });

  it("round-trips long paths (pax headers) and large files through unpackArtifact", async () => {
    const dir = await scratch();
    const long = `${"deep/".repeat(30)}file-with-a-long-name.bin`;
    const big = Buffer.alloc(3 * 1024 * 1024 + 17, 0xab);
    await makeTestArtifact(join(dir, "a"), { revision: 5n, payload: big, extra: { [long]: new Uint8Array([9]) } });
    await packToFile(join(dir, "a"), join(dir, "a.tar"));
    const { manifest, bytes } = await readManifest(join(dir, "a"));
    await mkdir(join(dir, "out"));
    await unpackArtifact(join(dir, "a.tar"), join(dir, "out"), { manifest, manifestBytes: bytes });
    expect((await readFile(join(dir, "out", "data", "fold.snap"))).equals(big)).toBe(true);
    expect(await readFile(join(dir, "out", "data", ...long.split("/")))).toEqual(Buffer.from([9]));
    expect((await readFile(join(dir, "out", MANIFEST_FILE))).equals(Buffer.from(bytes))).toBe(true);
  });
});

describe("packArtifact teardown", () => {
  async function bigArtifact() {
    const dir = await scratch();
    await makeTestArtifact(join(dir, "a"), { revision: 2n, payload: Buffer.alloc(6 * 1024 * 1024, 5) });
    return { dir, ...(await readManifest(join(dir, "a"))) };
  }

  it("a consumer that stops early ends the stream without hanging", async () => {
    const { dir, manifest, bytes } = await bigArtifact();
    let chunks = 0;
    for await (const _ of packArtifact(join(dir, "a"), manifest, bytes)) {
      if (++chunks === 2) break;
    }
    expect(chunks).toBe(2);
  });

  it("aborting mid-stream rejects with ABORTED", async () => {
    const { dir, manifest, bytes } = await bigArtifact();
    const ctl = new AbortController();
    const drain = async () => {
      let n = 0;
      for await (const _ of packArtifact(join(dir, "a"), manifest, bytes, { signal: ctl.signal })) {
        if (++n === 2) ctl.abort();
      }
    };
    await expectCode(drain(), "ABORTED");
  });
});

describe("unpackArtifact handing chunks back (release)", () => {
  /**
   * The tar in chunks of `size` bytes from a small pool; a released chunk is overwritten with
   * garbage at once and read into again. Any chunk released before every byte of it was
   * handled corrupts what is written, which the hashes then refuse.
   */
  function poisoningSource(tar: Buffer, size: number) {
    const free: Buffer[] = [];
    const lent = new Map<Uint8Array, Buffer>();
    let released = 0;
    let chunks = 0;
    let buffers = 0;
    const body = (async function* () {
      for (let at = 0; at < tar.length; at += size) {
        const buf =
          free.pop() ??
          (() => {
            buffers++;
            return Buffer.alloc(size);
          })();
        const n = tar.copy(buf, 0, at, Math.min(tar.length, at + size));
        const chunk = buf.subarray(0, n);
        lent.set(chunk, buf);
        chunks++;
        yield chunk;
      }
    })();
    const release = (chunk: Uint8Array) => {
      const buf = lent.get(chunk);
      expect(buf, "a chunk of this source, released once").toBeDefined();
      lent.delete(chunk);
      buf?.fill(0xee);
      if (buf) free.push(buf);
      released++;
    };
    return { body, release, stats: () => ({ released, chunks, buffers }) };
  }

  it("releases every chunk only once all its bytes are handled, with headers across chunk edges", async () => {
    const dir = await scratch();
    const long = `${"deep/".repeat(30)}file-with-a-long-name.bin`;
    const big = Buffer.alloc(2 * 1024 * 1024 + 333);
    for (let i = 0; i < big.length; i++) big[i] = (i * 13) & 0xff;
    await makeTestArtifact(join(dir, "a"), {
      revision: 5n,
      payload: big,
      extra: { [long]: new Uint8Array([9]), "empty.bin": new Uint8Array(), "x/y.bin": Buffer.alloc(70_000, 3) },
    });
    await packToFile(join(dir, "a"), join(dir, "a.tar"));
    const tar = await readFile(join(dir, "a.tar"));
    const { manifest, bytes } = await readManifest(join(dir, "a"));
    // Odd chunk sizes put headers and pax records across chunk boundaries.
    for (const size of [7_777, 65_536, 300_001]) {
      const out = join(dir, `out-${size}`);
      await mkdir(out);
      const src = poisoningSource(tar, size);
      await unpackArtifact(src.body, out, { manifest, manifestBytes: bytes, release: src.release });
      expect((await readFile(join(out, "data", "fold.snap"))).equals(big)).toBe(true);
      expect(await readFile(join(out, "data", ...long.split("/")))).toEqual(Buffer.from([9]));
      const { released, chunks, buffers } = src.stats();
      // Nearly every chunk comes back (the last ones hold only the tar's end blocks), so
      // memory is reused: far fewer buffers than chunks.
      expect(released, `size ${size}`).toBeGreaterThanOrEqual(chunks - 3);
      if (chunks > 10) expect(buffers, `size ${size}`).toBeLessThan(chunks / 2);
    }
  });
});

describe("unpackArtifact", () => {
  async function setup() {
    const dir = await scratch();
    await makeTestArtifact(join(dir, "a"), { revision: 3n });
    const { manifest, bytes } = await readManifest(join(dir, "a"));
    const out = join(dir, "out");
    let n = 0;
    const unpack = async (entries: Parameters<typeof buildTar>[0]) => {
      await rm(out, { recursive: true, force: true });
      await mkdir(out);
      const tar = join(dir, `t${n++}.tar`);
      await writeFile(tar, await buildTar(entries));
      return unpackArtifact(tar, out, { manifest, manifestBytes: bytes });
    };
    const file = (name: string, body: Uint8Array | string, mode = 0o644) => ({
      header: { name, type: "file" as const, mode },
      body: typeof body === "string" ? Buffer.from(body) : body,
    });
    const payload = await readFile(join(dir, "a", "data", "fold.snap"));
    return { dir, out, bytes, unpack, file, payload };
  }

  it("ignores modes and times in the tar (setuid 04777 arrives as 0644)", async () => {
    const { out, bytes, unpack, file, payload } = await setup();
    await unpack([
      file(MANIFEST_FILE, bytes),
      { header: { name: "data/", type: "directory", mode: 0o777, mtime: new Date(0) } },
      { header: { name: "data/fold.snap", type: "file", mode: 0o4777, mtime: new Date(0) }, body: payload },
    ]);
    const st = await stat(join(out, "data", "fold.snap"));
    expect(st.mode & 0o7777).toBe(0o644 & ~process.umask());
    expect(st.mtimeMs).toBeGreaterThan(Date.parse("2020-01-01"));
  });

  it("refuses './' entries and directories the manifest does not need", async () => {
    const { unpack, file, bytes, payload, out } = await setup();
    await expectCode(
      unpack([file(MANIFEST_FILE, bytes), file("./data/fold.snap", payload)]),
      "ARTIFACT_INVALID",
      /leaves/,
    );
    await expectCode(
      unpack([file(MANIFEST_FILE, bytes), { header: { name: "data/extra/", type: "directory" } }]),
      "ARTIFACT_INVALID",
      /does not need/,
    );
    expect(await readdir(out)).toEqual([MANIFEST_FILE]);
  });

  it("refuses an embedded manifest that differs from the pointer in one byte", async () => {
    const { unpack, file, bytes, payload } = await setup();
    const doctored = Buffer.from(bytes);
    doctored[doctored.length - 2] = (doctored[doctored.length - 2] ?? 0) ^ 1;
    await expectCode(
      unpack([file(MANIFEST_FILE, doctored), file("data/fold.snap", payload)]),
      "ARTIFACT_INVALID",
      /disagrees/,
    );
  });

  it("refuses a truncated tar", async () => {
    const { dir, unpack, file, bytes, payload } = await setup();
    await unpack([file(MANIFEST_FILE, bytes), file("data/fold.snap", payload)]);
    const whole = await buildTar([file(MANIFEST_FILE, bytes), file("data/fold.snap", Buffer.alloc(5000, 1))]);
    await writeFile(join(dir, "cut.tar"), whole.subarray(0, 1200));
    const { manifest } = await readManifest(join(dir, "a"));
    const out2 = join(dir, "out2");
    await mkdir(out2);
    await expectCode(
      unpackArtifact(join(dir, "cut.tar"), out2, { manifest, manifestBytes: bytes }),
      "ARTIFACT_INVALID",
    );
  });

  it("an abort in the middle of a big entry rejects with ABORTED and nothing escapes", async () => {
    const dir = await scratch();
    await makeTestArtifact(join(dir, "a"), { revision: 4n, payload: Buffer.alloc(16 * 1024 * 1024, 3) });
    await packToFile(join(dir, "a"), join(dir, "a.tar"));
    const { manifest, bytes } = await readManifest(join(dir, "a"));
    const results: string[] = [];
    for (const delayMs of [0, 1, 5, 20]) {
      const out = join(dir, `out-${delayMs}`);
      await mkdir(out);
      const ctl = new AbortController();
      setTimeout(() => ctl.abort(), delayMs);
      const res = await unpackArtifact(join(dir, "a.tar"), out, {
        manifest,
        manifestBytes: bytes,
        signal: ctl.signal,
      }).then(
        () => "done",
        (e: unknown) => (SlipstreamError.is(e) ? e.code : String(e)),
      );
      expect(["ABORTED", "done"]).toContain(res);
      results.push(res);
    }
    expect(results[0]).toBe("ABORTED");
  });

  it("stops with ABORTED when the signal fires", async () => {
    const { dir, bytes } = await setup();
    await writeFile(
      join(dir, "t.tar"),
      await buildTar([{ header: { name: MANIFEST_FILE, type: "file" }, body: bytes }]),
    );
    const { manifest } = await readManifest(join(dir, "a"));
    await mkdir(join(dir, "o"));
    await expectCode(
      unpackArtifact(join(dir, "t.tar"), join(dir, "o"), {
        manifest,
        manifestBytes: bytes,
        signal: AbortSignal.abort(),
      }),
      "ABORTED",
    );
  });
});
