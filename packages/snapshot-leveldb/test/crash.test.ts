import { type ChildProcess, spawn } from "node:child_process";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { WatchCursor } from "@slipstream/core";
import { tempDir } from "@slipstream/testkit";
import { describe, expect, it } from "vitest";
import { LevelSnapshotStore } from "../src/index.js";
import { batchFor, expectedState, valueFor } from "./fixtures/stream.js";

const repoRoot = fileURLToPath(new URL("../../../", import.meta.url));
const fixture = fileURLToPath(new URL("./fixtures/apply-stream.ts", import.meta.url));

function startWriter(dir: string, limit?: number): ChildProcess {
  const args = ["--conditions=@slipstream/source", "--import", "tsx", fixture, dir];
  if (limit !== undefined) args.push(String(limit));
  return spawn(process.execPath, args, { cwd: repoRoot, stdio: ["ignore", "pipe", "pipe"] });
}

/** Resolves with the cursor the child reports once it has opened the store. */
function ready(child: ChildProcess): Promise<number> {
  return new Promise((resolve, reject) => {
    let out = "";
    let err = "";
    child.stderr?.on("data", (d: Buffer) => {
      err += d.toString();
    });
    child.stdout?.on("data", (d: Buffer) => {
      out += d.toString();
      const m = /ready (\d+)\n/.exec(out);
      if (m) resolve(Number(m[1]));
    });
    child.once("exit", (code, signal) => reject(new Error(`writer exited early (${code ?? signal}): ${err}`)));
  });
}

function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once("exit", () => resolve()));
}

/** Every entry must be exactly what batches 1..cursor produce: data and cursor agree. */
async function expectConsistent(store: LevelSnapshotStore): Promise<number> {
  const cursor = Number(store.cursor.revision ?? 0n);
  const expected = expectedState(cursor);
  const seen = new Map<string, number>();
  for await (const e of store.range("")) {
    const n = Number(e.version.revision);
    seen.set(e.key, n);
    expect(Buffer.from(e.value).equals(Buffer.from(valueFor(e.key, n))), `value of ${e.key}`).toBe(true);
  }
  expect(seen, `state at cursor ${cursor}`).toEqual(expected);
  expect(await store.count()).toBe(expected.size);
  return cursor;
}

async function dump(store: LevelSnapshotStore): Promise<string[]> {
  const out: string[] = [];
  for await (const e of store.range(""))
    out.push(`${e.key}|${e.version.toHex()}|${Buffer.from(e.value).toString("hex")}`);
  return out;
}

describe("crash safety (kill -9 of a writer process)", () => {
  it("after 10 kills at random points, cursor and data always agree, and re-applying from the cursor converges to a clean run", async () => {
    await using tmp = await tempDir("slipstream-leveldb-crash-");
    const dir = join(tmp.path, "fold");
    let previous = 0;
    let progressed = 0;
    for (let round = 0; round < 10; round++) {
      const child = startWriter(dir);
      const from = await ready(child);
      expect(from).toBe(previous);
      await new Promise((r) => setTimeout(r, 100 + Math.floor(Math.random() * 300)));
      child.kill("SIGKILL");
      await exited(child);
      expect(child.signalCode).toBe("SIGKILL");
      const store = await LevelSnapshotStore.open(dir);
      try {
        const cursor = await expectConsistent(store);
        // A process crash loses nothing LevelDB handed to the OS: the cursor never goes back.
        expect(cursor).toBeGreaterThanOrEqual(previous);
        if (cursor > previous) progressed++;
        previous = cursor;
      } finally {
        await store.close();
      }
    }
    expect(progressed, "the writer made progress between kills").toBeGreaterThanOrEqual(3);

    // Resume from the recovered cursor up to a target, then compare with a clean run.
    const target = previous + 200;
    const resumed = await LevelSnapshotStore.open(dir);
    for (let n = previous + 1; n <= target; n++) {
      await resumed.apply(batchFor(n), WatchCursor.fromRevision(BigInt(n)));
    }
    await expectConsistent(resumed);
    const clean = await LevelSnapshotStore.open(join(tmp.path, "clean"));
    for (let n = 1; n <= target; n++) await clean.apply(batchFor(n), WatchCursor.fromRevision(BigInt(n)));
    expect(resumed.cursor.equals(clean.cursor)).toBe(true);
    expect(await dump(resumed)).toEqual(await dump(clean));
    expect(await resumed.count()).toBe(await clean.count());
    await resumed.close();
    await clean.close();
  }, 180_000);

  it("re-applying batches at or below the cursor after a crash is harmless (idempotent)", async () => {
    await using tmp = await tempDir("slipstream-leveldb-crash-");
    const dir = join(tmp.path, "fold");
    const child = startWriter(dir);
    await ready(child);
    await new Promise((r) => setTimeout(r, 150));
    child.kill("SIGKILL");
    await exited(child);
    const store = await LevelSnapshotStore.open(dir);
    const cursor = await expectConsistent(store);
    const before = await dump(store);
    // Replaying the last few batches again (as a resume that overlaps would) changes nothing.
    for (let n = Math.max(1, cursor - 5); n <= cursor; n++) {
      await store.apply(batchFor(n), WatchCursor.fromRevision(BigInt(n)));
    }
    expect(store.cursor.revision).toBe(BigInt(cursor));
    expect(await dump(store)).toEqual(before);
    await expectConsistent(store);
    await store.close();
  }, 60_000);

  it("a writer that finishes cleanly leaves exactly its final state", async () => {
    await using tmp = await tempDir("slipstream-leveldb-crash-");
    const dir = join(tmp.path, "fold");
    const child = startWriter(dir, 300);
    await ready(child);
    await exited(child);
    expect(child.exitCode).toBe(0);
    const store = await LevelSnapshotStore.open(dir);
    expect(await expectConsistent(store)).toBe(300);
    await store.close();
  }, 60_000);
});
