import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { MANIFEST_FILE, SlipstreamError } from "@slipstream/core";
import { type TempDir, tempDir } from "@slipstream/testkit";
import { afterEach, describe, expect, it } from "vitest";
import { LevelSnapshotStore } from "../src/index.js";
import { at, dump, put } from "./helpers.js";

let tmp: TempDir | undefined;
afterEach(async () => {
  await tmp?.cleanup();
  tmp = undefined;
});

/** 6000 keys under `eu.`, 4000 under `us.`, committed in batches of 1000 at revisions 1..10000. */
async function bigFold(dir: string): Promise<LevelSnapshotStore> {
  const store = await LevelSnapshotStore.open(dir);
  let rev = 0;
  for (let b = 0; b < 10; b++) {
    const batch = [];
    for (let i = 0; i < 1000; i++) {
      rev++;
      const key = rev <= 6000 ? `eu.${String(rev).padStart(5, "0")}` : `us.${String(rev).padStart(5, "0")}`;
      batch.push(put(key, `value-${rev}`, rev));
    }
    await store.apply(batch, at(rev));
  }
  return store;
}

describe("partial LevelDB folds beyond one write batch", () => {
  it("a scoped export of 6000 of 10000 keys is a fold of exactly those, at the store's cursor", async () => {
    tmp = await tempDir("slipstream-scoped-");
    const store = await bigFold(join(tmp.path, "fold"));
    const artifact = join(tmp.path, "artifact");
    const progress: string[] = [];
    const manifest = await store.exportTo(artifact, {
      scope: { kind: "prefix", prefix: "eu." },
      onProgress: (p) => progress.push(p.phase),
    });
    expect(manifest.scope).toEqual(["eu."]);
    expect(manifest.cursor.revision).toBe(10000n);
    expect(progress).toContain("export");
    expect(progress).toContain("seal");
    // Only LevelDB files were shipped; no LOCK or LOG.
    const shipped = (await readdir(join(artifact, "data"))).sort();
    expect(shipped).not.toContain("LOCK");
    expect(shipped).not.toContain("LOG");
    expect(JSON.parse(await readFile(join(artifact, MANIFEST_FILE), "utf8")).scope).toEqual(["eu."]);

    const imported = await LevelSnapshotStore.import(artifact, join(tmp.path, "imported"), {
      scope: { kind: "prefix", prefix: "eu." },
      verifyRecords: true,
    });
    expect(await imported.count()).toBe(6000);
    expect(await dump(imported)).toEqual(await dump(store, "eu."));
    expect(imported.cursor.revision).toBe(10000n);
    await imported.close();
    await store.close();
  });

  it("a narrowing import of a whole 10000-key artifact keeps exactly the node's keys, count exact across a reopen", async () => {
    tmp = await tempDir("slipstream-scoped-");
    const store = await bigFold(join(tmp.path, "fold"));
    const artifact = join(tmp.path, "artifact");
    await store.exportTo(artifact);
    const dest = join(tmp.path, "narrow");
    // us.07… and us.09…: 1000 + 1000 keys, across several delete batches of the narrowing.
    const narrow = await LevelSnapshotStore.import(artifact, dest, {
      scope: { kind: "prefixes", prefixes: ["us.09", "us.07"] },
      transfer: "link",
    });
    expect(narrow.scope).toEqual(["us.07", "us.09"]);
    expect(await narrow.count()).toBe(2000);
    expect(await dump(narrow)).toEqual([...(await dump(store, "us.07")), ...(await dump(store, "us.09"))]);
    await narrow.close();
    const again = await LevelSnapshotStore.open(dest);
    expect(await again.count()).toBe(2000);
    expect(again.scope).toEqual(["us.07", "us.09"]);
    // The artifact was only linked from: a second import of it is still whole and valid.
    const whole = await LevelSnapshotStore.import(artifact, join(tmp.path, "whole"));
    expect(await whole.count()).toBe(10000);
    expect(whole.scope).toBeUndefined();
    await whole.close();
    await again.close();
    await store.close();
  });

  it("an aborted scoped export leaves nothing at the destination", async () => {
    tmp = await tempDir("slipstream-scoped-");
    const store = await bigFold(join(tmp.path, "fold"));
    const ctl = new AbortController();
    const dest = join(tmp.path, "artifact");
    const err = await store
      .exportTo(dest, {
        scope: { kind: "prefix", prefix: "eu." },
        signal: ctl.signal,
        onProgress: () => ctl.abort(),
      })
      .catch((e: unknown) => e);
    expect(SlipstreamError.is(err, "ABORTED"), String(err)).toBe(true);
    expect((await readdir(tmp.path)).sort()).toEqual(["fold"]);
    // The store is unharmed.
    await store.apply([put("eu.late", "x", 10001)], at(10001));
    expect(await store.count()).toBe(10001);
    await store.close();
  });
});
