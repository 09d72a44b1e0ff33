/** The `slipstream` bin as a real process: arguments, exit codes, stdout/stderr. */
import { spawnSync } from "node:child_process";
import { mkdir, readdir } from "node:fs/promises";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { EXIT } from "@slipstream/cli";
import { LevelSnapshotStore } from "@slipstream/snapshot-leveldb";
import { repoRoot, type TempDir, tempDir } from "@slipstream/testkit";
import { ArtifactTransport } from "@slipstream/transport";
import { FsBlobStore } from "@slipstream/transport-fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cli, makeFold, routes } from "./helpers.js";

let tmp: TempDir;
beforeAll(async () => {
  tmp = await tempDir("slipstream-cli-bin-");
});
afterAll(async () => {
  await tmp.cleanup();
});

function slipstream(args: string[], env: Record<string, string> = {}) {
  const root = repoRoot();
  const r = spawnSync(
    process.execPath,
    ["--conditions=@slipstream/source", "--import", "tsx", join(root, "apps/cli/src/bin.ts"), ...args],
    { cwd: root, encoding: "utf8", env: { PATH: process.env.PATH ?? "", ...env } },
  );
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe("the slipstream bin", () => {
  it("prints help, and exits with the documented codes", async () => {
    const help = slipstream(["--help"]);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/Usage: slipstream \[options\] \[command\]/);
    const missing = slipstream(["inspect", join(tmp.path, "nope")]);
    expect(missing.code).toBe(EXIT.INPUT);
    expect(missing.stderr).toBe(`slipstream: fold directory ${join(tmp.path, "nope")} does not exist\n`);
    expect(missing.stdout).toBe("");
    const bad = slipstream(["pull"]);
    expect(bad.code).toBe(EXIT.USAGE);
    expect(bad.stderr).toMatch(/missing required argument/);
  });

  it("writes JSON to stdout for scripts", async () => {
    const fold = join(tmp.path, "fold");
    await makeFold(fold, routes(3));
    const r = slipstream(["ls", fold, "--json"]);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ count: 3, truncated: false });
  });
});

describe("interrupted", () => {
  it("an aborted pull exits 130 and leaves nothing at the destination", async () => {
    const fold = join(tmp.path, "src-fold");
    await makeFold(fold, routes(10));
    const art = join(tmp.path, "art");
    const store = await LevelSnapshotStore.open(fold);
    await store.exportTo(art);
    await store.close();
    const remote = join(tmp.path, "remote");
    await mkdir(remote);
    await new ArtifactTransport(new FsBlobStore(remote)).upload("k", art);
    const parent = join(tmp.path, "dest-parent");
    await mkdir(parent);
    const ctl = new AbortController();
    ctl.abort();
    const r = await cli(["pull", pathToFileURL(remote).href, join(parent, "fold")], { signal: ctl.signal });
    expect(r.code).toBe(EXIT.INTERRUPTED);
    expect(await readdir(parent)).toEqual([]);
  });
});
