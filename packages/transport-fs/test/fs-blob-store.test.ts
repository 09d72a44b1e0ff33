import { execFile } from "node:child_process";
import { readdir, utimes, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { SlipstreamError } from "@slipstream/core";
import { repoRoot, tempDir } from "@slipstream/testkit";
import { afterEach, describe, expect, it } from "vitest";
import { FsBlobStore, RESERVED_PREFIX } from "../src/index.js";

const run = promisify(execFile);
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0)) await c();
});
async function root(): Promise<string> {
  const d = await tempDir("slipstream-fsstore-");
  cleanups.push(d.cleanup);
  return d.path;
}
const enc = (s: string) => new TextEncoder().encode(s);
async function* body(s: string) {
  yield enc(s);
}
async function code(p: Promise<unknown>): Promise<string | undefined> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  return SlipstreamError.is(err) ? err.code : err === undefined ? undefined : `non-slipstream: ${String(err)}`;
}

describe("FsBlobStore", () => {
  it("stores objects as plain files under the root", async () => {
    const dir = await root();
    const store = new FsBlobStore(dir);
    await store.put("a/b/c.txt", body("hello"));
    expect(store.pathOf("a/b/c.txt")).toBe(join(dir, "a", "b", "c.txt"));
    expect(await readdir(join(dir, "a", "b"))).toEqual(["c.txt"]);
  });

  it("refuses traversal and reserved names with INVALID_ARGUMENT, touching nothing", async () => {
    const dir = await root();
    const store = new FsBlobStore(join(dir, "store"));
    for (const key of [
      "../outside",
      "a/../../outside",
      "/etc/passwd",
      "a\\..\\b",
      `a/${RESERVED_PREFIX}lock-x`,
      "x".repeat(201),
    ]) {
      expect(await code(store.put(key, body("x"))), key).toBe("INVALID_ARGUMENT");
      expect(await code(store.readSmall(key, { maxBytes: 10 })), key).toBe("INVALID_ARGUMENT");
      expect(await code(store.delete(key)), key).toBe("INVALID_ARGUMENT");
    }
    expect(await readdir(dir)).toEqual([]);
  });

  it("never lists its temp and lock files", async () => {
    const dir = await root();
    const store = new FsBlobStore(dir);
    await store.put("p/x", body("x"));
    await writeFile(join(dir, "p", `${RESERVED_PREFIX}tmp-leftover`), "partial");
    await writeFile(join(dir, "p", `${RESERVED_PREFIX}lock-x`), "{}");
    const keys: string[] = [];
    for await (const i of store.list("p/")) keys.push(i.key);
    expect(keys).toEqual(["p/x"]);
  });

  it("an object cannot also be a folder of objects: BACKEND, nothing replaced", async () => {
    const store = new FsBlobStore(await root());
    await store.put("a/b", body("file"));
    expect(await code(store.put("a/b/c", body("x")))).toBe("BACKEND");
    await store.put("d/e/f", body("x"));
    expect(await code(store.put("d/e", body("x")))).toBe("BACKEND");
    expect(Buffer.from((await store.readSmall("a/b", { maxBytes: 10 }))?.bytes ?? []).toString()).toBe("file");
  });

  it("recovers a stale lock left by a crashed writer", async () => {
    const dir = await root();
    const store = new FsBlobStore(dir, { staleLockMs: 1_000, lockWaitMs: 5_000 });
    await store.put("k/pointer", body("v1"));
    const lock = join(dir, "k", `${RESERVED_PREFIX}lock-pointer`);
    await writeFile(lock, JSON.stringify({ pid: 999999, host: "gone" }));
    const old = new Date(Date.now() - 60_000);
    await utimes(lock, old, old);
    const v1 = (await store.readSmall("k/pointer", { maxBytes: 10 }))?.version ?? "";
    const res = await store.conditionalPut("k/pointer", enc("v2"), { ifVersion: v1 });
    expect(res.status).toBe("written");
    expect(await readdir(join(dir, "k"))).toEqual(["pointer"]);
  });

  it("waits for a live lock and gives up with TIMEOUT, then proceeds once it is released", async () => {
    const dir = await root();
    const store = new FsBlobStore(dir, { staleLockMs: 60_000, lockWaitMs: 200 });
    await store.put("k/pointer", body("v1"));
    const lock = join(dir, "k", `${RESERVED_PREFIX}lock-pointer`);
    await writeFile(lock, "{}");
    const v1 = (await store.readSmall("k/pointer", { maxBytes: 10 }))?.version ?? "";
    expect(await code(store.conditionalPut("k/pointer", enc("v2"), { ifVersion: v1 }))).toBe("TIMEOUT");
    expect(Buffer.from((await store.readSmall("k/pointer", { maxBytes: 10 }))?.bytes ?? []).toString()).toBe("v1");
    const { unlink } = await import("node:fs/promises");
    await unlink(lock);
    expect((await store.conditionalPut("k/pointer", enc("v2"), { ifVersion: v1 })).status).toBe("written");
  });

  it("versions are content hashes: equal bytes, equal version; a changed object changes it", async () => {
    const store = new FsBlobStore(await root());
    await store.put("v/a", body("same"));
    await store.put("v/b", body("same"));
    const a = await store.readSmall("v/a", { maxBytes: 10 });
    const b = await store.readSmall("v/b", { maxBytes: 10 });
    expect(a?.version).toBe(b?.version);
    await store.put("v/a", body("changed"));
    expect((await store.readSmall("v/a", { maxBytes: 10 }))?.version).not.toBe(a?.version);
  });

  it("two stores on one root (two processes' view) still agree on one conditional-create winner", async () => {
    const dir = await root();
    const stores = [new FsBlobStore(dir), new FsBlobStore(dir)];
    const results = await Promise.all(
      Array.from({ length: 10 }, (_, i) =>
        (stores[i % 2] as FsBlobStore).conditionalPut("race/p", enc(`w${i}`), { ifAbsent: true }),
      ),
    );
    expect(results.filter((r) => r.status === "written")).toHaveLength(1);
  });

  it("compare-and-swap from several processes loses no update", async () => {
    const dir = await root();
    const worker = fileURLToPath(new URL("./fixtures/cas-worker.ts", import.meta.url));
    const processes = 4;
    const rounds = 25;
    const outs = await Promise.all(
      Array.from({ length: processes }, () =>
        run(process.execPath, ["--conditions=@slipstream/source", "--import", "tsx", worker, dir, String(rounds)], {
          cwd: repoRoot(),
          timeout: 120_000,
        }),
      ),
    );
    const store = new FsBlobStore(dir);
    const final = await store.readSmall("shared/counter", { maxBytes: 100 });
    expect(Number(Buffer.from(final?.bytes ?? []).toString())).toBe(processes * rounds);
    for (const o of outs) expect(JSON.parse(o.stdout)).toHaveProperty("conflicts");
    expect(await readdir(join(dir, "shared"))).toEqual(["counter"]);
  });

  it("an abort before a get body is read rejects the read and crashes nothing", async () => {
    const store = new FsBlobStore(await root());
    await store.put("g/x", body("x".repeat(100_000)));
    const ctl = new AbortController();
    const got = await store.get("g/x", { signal: ctl.signal });
    expect(got?.size).toBe(100_000);
    ctl.abort();
    await new Promise((r) => setTimeout(r, 20));
    let err: unknown;
    try {
      for await (const _ of got?.body ?? []) {
      }
    } catch (e) {
      err = e;
    }
    expect(SlipstreamError.is(err, "ABORTED"), String(err)).toBe(true);
  });

  it("validates its options", () => {
    expect(() => new FsBlobStore("")).toThrow(TypeError);
    expect(() => new FsBlobStore("x", { staleLockMs: 0 })).toThrow(TypeError);
    expect(() => new FsBlobStore("x", { lockWaitMs: -1 })).toThrow(TypeError);
  });
});

describe("FsBlobStore bodies", () => {
  const openFds = async () => (await readdir("/proc/self/fd")).length;

  it("releases the file when the caller gives up before reading", async () => {
    const dir = await tempDir("slipstream-fs-fd-");
    cleanups.push(dir.cleanup);
    const store = new FsBlobStore(dir.path);
    await store.put(
      "obj",
      (async function* () {
        yield new Uint8Array(1024);
      })(),
    );
    const before = await openFds();
    for (let i = 0; i < 20; i++) {
      const got = await store.get("obj");
      await got?.body[Symbol.asyncIterator]().return?.();
    }
    // Closing is asynchronous; give the event loop a moment.
    await new Promise((r) => setTimeout(r, 50));
    expect(await openFds()).toBeLessThanOrEqual(before + 1);
  });
});

describe("FsBlobStore bodies: released chunks are read into again", () => {
  const openFds = async () => (await readdir("/proc/self/fd")).length;
  const pattern = (n: number) => {
    const b = Buffer.alloc(n);
    for (let i = 0; i < n; i++) b[i] = (i * 31 + 7) & 0xff;
    return b;
  };

  it("streams the object exactly; released chunks reuse a couple of buffers, kept ones stay intact", async () => {
    const store = new FsBlobStore(await root());
    const data = pattern(5 * 1024 * 1024 + 4321);
    await store.put(
      "big",
      (async function* () {
        yield data;
      })(),
    );
    // Released at once: copied first (the contract), then handed back.
    const got = await store.get("big");
    expect(got?.release).toBeTypeOf("function");
    const copies: Buffer[] = [];
    const memory = new Set<ArrayBufferLike>();
    for await (const chunk of got?.body ?? []) {
      copies.push(Buffer.from(chunk));
      memory.add(chunk.buffer);
      got?.release?.(chunk);
    }
    expect(Buffer.concat(copies).equals(data)).toBe(true);
    expect(copies.length).toBeGreaterThanOrEqual(6);
    expect(memory.size).toBeLessThanOrEqual(3);

    // Never released: every chunk keeps its own memory and its bytes.
    const again = await store.get("big");
    const kept: Uint8Array[] = [];
    for await (const chunk of again?.body ?? []) kept.push(chunk);
    expect(new Set(kept.map((c) => c.buffer)).size).toBe(kept.length);
    expect(Buffer.concat(kept).equals(data)).toBe(true);
  });

  it("closes the file when the caller stops early, releasing or not", async () => {
    const store = new FsBlobStore(await root());
    await store.put(
      "big",
      (async function* () {
        yield pattern(3 * 1024 * 1024);
      })(),
    );
    const before = await openFds();
    for (let i = 0; i < 10; i++) {
      const got = await store.get("big");
      for await (const chunk of got?.body ?? []) {
        if (i % 2 === 0) got?.release?.(chunk);
        break;
      }
    }
    expect(await openFds()).toBeLessThanOrEqual(before);
  });
});

describe("FsBlobStore lock recovery", () => {
  it("a stale lock and 12 racing compare-and-swaps: exactly one winner, every round", async () => {
    const dir = await tempDir("slipstream-fs-stale-race-");
    cleanups.push(dir.cleanup);
    const stores = Array.from({ length: 12 }, () => new FsBlobStore(dir.path, { staleLockMs: 1_000 }));
    const first = stores[0] as FsBlobStore;
    const lock = join(dir.path, "k", `${RESERVED_PREFIX}lock-pointer`);
    const old = new Date(Date.now() - 60_000);
    for (let round = 0; round < 30; round++) {
      await first.put(
        "k/pointer",
        (async function* () {
          yield new TextEncoder().encode(`base-${round}`);
        })(),
      );
      const base = (await first.readSmall("k/pointer", { maxBytes: 100 }))?.version ?? "";
      // A crashed writer's lock: a foreign host, not refreshed for a minute.
      await writeFile(lock, JSON.stringify({ nonce: `dead-${round}`, pid: 1, host: "gone" }));
      await utimes(lock, old, old);
      const results = await Promise.all(
        stores.map((s, i) =>
          s.conditionalPut("k/pointer", new TextEncoder().encode(`r${round}-w${i}`), { ifVersion: base }),
        ),
      );
      expect(
        results.filter((r) => r.status === "written"),
        `round ${round}`,
      ).toHaveLength(1);
    }
    expect((await readdir(join(dir.path, "k"))).sort()).toEqual(["pointer"]);
  });

  it("takes over at once a lock whose owner is a dead process on this host", async () => {
    const dir = await tempDir("slipstream-fs-dead-pid-");
    cleanups.push(dir.cleanup);
    const store = new FsBlobStore(dir.path, { staleLockMs: 60_000, lockWaitMs: 5_000 });
    await store.conditionalPut("k/pointer", new TextEncoder().encode("v1"), { ifAbsent: true });
    const { pid } = await promisify(execFile)(process.execPath, [
      "-e",
      "process.stdout.write(String(process.pid))",
    ]).then((r) => ({ pid: Number(r.stdout) }));
    const { hostname } = await import("node:os");
    await writeFile(
      join(dir.path, "k", `${RESERVED_PREFIX}lock-pointer`),
      JSON.stringify({ nonce: "x", pid, host: hostname() }),
    );
    const v1 = (await store.readSmall("k/pointer", { maxBytes: 10 }))?.version ?? "";
    expect((await store.conditionalPut("k/pointer", new TextEncoder().encode("v2"), { ifVersion: v1 })).status).toBe(
      "written",
    );
  });

  it("never takes over a live lock that keeps being refreshed, however long it is held", async () => {
    const dir = await tempDir("slipstream-fs-live-lock-");
    cleanups.push(dir.cleanup);
    const store = new FsBlobStore(dir.path, { staleLockMs: 200, lockWaitMs: 800 });
    await store.conditionalPut("k/pointer", new TextEncoder().encode("v1"), { ifAbsent: true });
    const v1 = (await store.readSmall("k/pointer", { maxBytes: 10 }))?.version ?? "";
    // A live holder on this host (this very process) that refreshes its lock, as owners do.
    const { hostname } = await import("node:os");
    const lock = join(dir.path, "k", `${RESERVED_PREFIX}lock-pointer`);
    const content = JSON.stringify({ nonce: "live", pid: process.pid, host: hostname() });
    await writeFile(lock, content);
    const refresh = setInterval(() => {
      const now = new Date();
      utimes(lock, now, now).catch(() => {});
    }, 50);
    try {
      const err = await store
        .conditionalPut("k/pointer", new TextEncoder().encode("v2"), { ifVersion: v1 })
        .catch((e: unknown) => e);
      expect(SlipstreamError.is(err, "BACKEND") || SlipstreamError.is(err, "TIMEOUT"), String(err)).toBe(true);
      expect(String(err)).toMatch(/waited 800 ms for the lock/);
      const { readFile } = await import("node:fs/promises");
      expect(await readFile(lock, "utf8")).toBe(content);
    } finally {
      clearInterval(refresh);
    }
    expect(Buffer.from((await store.readSmall("k/pointer", { maxBytes: 10 }))?.bytes ?? []).toString()).toBe("v1");
  });
});
