import { mkdir, readdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { EXIT } from "@slipstream/cli";
import { LevelSnapshotStore } from "@slipstream/snapshot-leveldb";
import { type TempDir, tempDir } from "@slipstream/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cli, cliBytes, makeFold, put, routes, snapshotDir } from "./helpers.js";

let tmp: TempDir;
let fold: string;
beforeAll(async () => {
  tmp = await tempDir("slipstream-cli-fold-");
  fold = join(tmp.path, "fold");
  await makeFold(fold, [
    ...routes(20),
    put("svc.bin", new Uint8Array([0, 1, 2, 255]), 21n),
    put("svc.text", "héllo", 22n),
  ]);
});
afterAll(async () => {
  await tmp.cleanup();
});

describe("inspect", () => {
  it("reports backend, format, cursor, key count, size on disk and last commit", async () => {
    const r = await cli(["inspect", fold]);
    expect(r.code).toBe(EXIT.OK);
    expect(r.stdout).toMatch(/backend\s+leveldb \(format generation 1\)/);
    expect(r.stdout).toMatch(/cursor\s+22 \(hex 0000000000000016\)/);
    expect(r.stdout).toMatch(/entries\s+22\n/);
    expect(r.stdout).toMatch(/size on disk\s+[\d.]+ (B|KiB|MiB) in \d+ files/);
    const j = (await cli(["inspect", fold, "--json"])).json<{
      backend: string;
      cursor: { revision: string; hex: string };
      entries: number;
      sizeOnDisk: number;
      lastCommit: string;
    }>();
    expect(j.backend).toBe("leveldb");
    expect(j.cursor.revision).toBe("22");
    expect(j.entries).toBe(22);
    expect(j.sizeOnDisk).toBeGreaterThan(0);
    expect(Date.now() - Date.parse(j.lastCommit)).toBeLessThan(24 * 3600_000);
  });

  it("a missing directory: exit 3, nothing created", async () => {
    const missing = join(tmp.path, "no-such-fold");
    const r = await cli(["inspect", missing]);
    expect(r.code).toBe(EXIT.INPUT);
    expect(r.stderr).toMatch(/does not exist/);
    expect(await readdir(tmp.path)).not.toContain("no-such-fold");
    const j = await cli(["inspect", missing, "--json"]);
    expect(j.json()).toEqual({
      error: { code: "NOT_FOUND", message: expect.stringMatching(/does not exist/), exitCode: 3 },
    });
  });

  it("an empty directory or one that is not a fold: exit 3, left exactly as it was", async () => {
    const empty = join(tmp.path, "empty");
    await mkdir(empty);
    expect((await cli(["inspect", empty])).code).toBe(EXIT.INPUT);
    expect(await readdir(empty)).toEqual([]);
    const other = join(tmp.path, "other");
    await mkdir(other);
    await writeFile(join(other, "notes.txt"), "not a fold");
    const r = await cli(["ls", other]);
    expect(r.code).toBe(EXIT.INPUT);
    expect(r.stderr).toMatch(/not a LevelDB database/);
    expect(await snapshotDir(other)).toEqual(["notes.txt"]);
  });

  it("a fold held open by a running service: exit 5 with the reason", async () => {
    const held = await LevelSnapshotStore.open(fold);
    try {
      const r = await cli(["inspect", fold]);
      expect(r.code).toBe(EXIT.REFUSED);
      expect(r.stderr).toMatch(/locked.*stop it, or inspect an artifact/);
    } finally {
      await held.close();
    }
  });
});

describe("get", () => {
  it("prints revision and value; --json and --raw", async () => {
    const r = await cli(["get", fold, "svc.text"]);
    expect(r.code).toBe(EXIT.OK);
    expect(r.stdout).toMatch(/revision\s+22/);
    expect(r.stdout).toMatch(/value\s+héllo/);
    const j = (await cli(["get", fold, "svc.bin", "--json"])).json<Record<string, unknown>>();
    expect(j).toMatchObject({ key: "svc.bin", revision: "21", size: 4, value: null, valueBase64: "AAEC/w==" });
    const raw = await cliBytes(["get", fold, "svc.bin", "--raw"]);
    expect(raw.code).toBe(0);
    expect([...raw.bytes]).toEqual([0, 1, 2, 255]);
  });

  it("an absent key: exit 1", async () => {
    const r = await cli(["get", fold, "route.9999"]);
    expect(r.code).toBe(EXIT.PROBLEM);
    expect(r.stderr).toMatch(/"route.9999" is not in the fold/);
  });
});

describe("ls", () => {
  it("lists keys in byte order with revision and size, honours prefix and --limit", async () => {
    const r = await cli(["ls", fold, "svc."]);
    expect(r.code).toBe(EXIT.OK);
    expect(r.stdout).toBe("svc.bin\t21\t4\nsvc.text\t22\t6\n");
    const lim = await cli(["ls", fold, "route.", "--limit", "3"]);
    expect(
      lim.stdout
        .trim()
        .split("\n")
        .map((l) => l.split("\t")[0]),
    ).toEqual(["route.0001", "route.0002", "route.0003"]);
    const j = (await cli(["ls", fold, "route.", "--limit", "2", "--json"])).json<{
      entries: { key: string; revision: string }[];
      count: number;
      truncated: boolean;
    }>();
    expect(j.entries).toEqual([
      { key: "route.0001", revision: "1", size: 2 },
      { key: "route.0002", revision: "2", size: 2 },
    ]);
    expect(j.truncated).toBe(true);
    const all = (await cli(["ls", fold, "--json"])).json<{ count: number; truncated: boolean }>();
    expect(all).toMatchObject({ count: 22, truncated: false });
    const none = (await cli(["ls", fold, "zzz", "--json"])).json<{ entries: unknown[] }>();
    expect(none.entries).toEqual([]);
  });
});

describe("usage", () => {
  it("--help and --version exit 0; unknown commands and bad options exit 2", async () => {
    const h = await cli(["--help"]);
    expect(h.code).toBe(0);
    expect(h.stdout).toMatch(/Exit codes:/);
    for (const cmd of ["inspect", "get", "ls", "verify", "artifacts", "pull", "diff", "status"]) {
      const sub = await cli([cmd, "--help"]);
      expect(sub.code, cmd).toBe(0);
      expect(sub.stdout, cmd).toMatch(/Usage: slipstream/);
      expect(sub.stdout, cmd).toMatch(/130\s+interrupted/);
    }
    expect((await cli(["--version"])).stdout.trim()).toBe("0.1.0");
    expect((await cli(["frobnicate"])).code).toBe(EXIT.USAGE);
    expect((await cli(["ls", fold, "--limit", "-4"])).code).toBe(EXIT.USAGE);
    expect((await cli(["inspect"])).code).toBe(EXIT.USAGE);
  });
});
