import { mkdir, readdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { EXIT } from "@slipstream/cli";
import { MANIFEST_FILE } from "@slipstream/core";
import { ARTIFACT_VERSION, LevelSnapshotStore } from "@slipstream/snapshot-leveldb";
import { type TempDir, tempDir } from "@slipstream/testkit";
import { ArtifactTransport } from "@slipstream/transport";
import { FsBlobStore } from "@slipstream/transport-fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cli, makeFold, routes, snapshotDir } from "./helpers.js";

let tmp: TempDir;
let artifact: string;
let remoteRoot: string;
let remoteUrl: string;
let n = 0;
const fresh = (name: string) => join(tmp.path, `${name}-${++n}`);

/** A copy of the good artifact. */
async function copyArtifact(): Promise<string> {
  const fold = fresh("fold");
  await makeFold(fold, routes(50));
  const dir = fresh("artifact");
  const store = await LevelSnapshotStore.open(fold);
  await store.exportTo(dir);
  await store.close();
  return dir;
}

/** The largest payload file of an artifact. */
async function largestFile(dir: string): Promise<string> {
  const m = JSON.parse(await readFile(join(dir, MANIFEST_FILE), "utf8")) as { files: { path: string; size: number }[] };
  const f = m.files.reduce((a, b) => (b.size > a.size ? b : a));
  return join(dir, f.path);
}

beforeAll(async () => {
  tmp = await tempDir("slipstream-cli-artifacts-");
  artifact = await copyArtifact();
  remoteRoot = join(tmp.path, "remote");
  await mkdir(remoteRoot);
  remoteUrl = pathToFileURL(remoteRoot).href;
  const transport = new ArtifactTransport(new FsBlobStore(remoteRoot));
  await transport.upload("edge/eu", artifact);
});
afterAll(async () => {
  await tmp.cleanup();
});

describe("verify (local)", () => {
  it("a sound artifact: exit 0 with its manifest fields; --deep opens it", async () => {
    const r = await cli(["verify", artifact]);
    expect(r.code).toBe(EXIT.OK);
    expect(r.stdout).toContain(`leveldb (format ${ARTIFACT_VERSION}, schema 1)`);
    expect(r.stdout).toMatch(/^backend\s+leveldb /m);
    expect(r.stdout).toMatch(/cursor\s+50 /);
    expect(r.stdout).toMatch(/verdict\s+OK/);
    const deep = await cli(["verify", artifact, "--deep", "--json"]);
    expect(deep.code).toBe(EXIT.OK);
    expect(deep.json()).toMatchObject({
      ok: true,
      manifest: { backend: "leveldb", cursor: { revision: "50" } },
      problems: [],
    });
  });

  it("a corrupt payload: exit 1 naming the file and both hashes, artifact untouched", async () => {
    const dir = await copyArtifact();
    const file = await largestFile(dir);
    const bytes = await readFile(file);
    bytes[bytes.length >> 1] = (bytes[bytes.length >> 1] ?? 0) ^ 0xff;
    await writeFile(file, bytes);
    const before = await snapshotDir(dir);
    const r = await cli(["verify", dir]);
    expect(r.code).toBe(EXIT.PROBLEM);
    expect(r.stdout).toMatch(/INVALID — 1 problem/);
    expect(r.stdout).toMatch(/checksum data\/.*expected sha256 [0-9a-f]{64}, found [0-9a-f]{64}/);
    expect(await snapshotDir(dir)).toEqual(before);
  });

  it("several defects are all listed; --json has them with kinds", async () => {
    const dir = await copyArtifact();
    await writeFile(join(dir, "data", "smuggled"), "x");
    await writeFile(await largestFile(dir), "truncated");
    const j = (await cli(["verify", dir, "--json"])).json<{ ok: boolean; problems: { kind: string }[] }>();
    expect(j.ok).toBe(false);
    expect(j.problems.map((p) => p.kind)).toEqual(["undeclared", "size"]);
  });

  it("--deep catches a manifest whose cursor disagrees with the payload (hashes all fine)", async () => {
    const dir = await copyArtifact();
    const path = join(dir, MANIFEST_FILE);
    const text = await readFile(path, "utf8");
    await writeFile(path, text.replace(/"cursor": "[0-9a-f]*"/, '"cursor": "00000000000003e7"'));
    expect((await cli(["verify", dir])).code).toBe(EXIT.OK);
    const r = await cli(["verify", dir, "--deep"]);
    expect(r.code).toBe(EXIT.PROBLEM);
    expect(r.stdout).toMatch(/import: .*cursor .* disagrees with manifest cursor 00000000000003e7/);
  });

  it("a malformed manifest, a missing directory, a file", async () => {
    const dir = await copyArtifact();
    await writeFile(join(dir, MANIFEST_FILE), "{ not json");
    const r = await cli(["verify", dir]);
    expect(r.code).toBe(EXIT.PROBLEM);
    expect(r.stdout).toMatch(/manifest MANIFEST.json: malformed manifest/);
    expect((await cli(["verify", join(tmp.path, "nope")])).code).toBe(EXIT.INPUT);
    await writeFile(join(tmp.path, "plain-file"), "x");
    expect((await cli(["verify", join(tmp.path, "plain-file")])).code).toBe(EXIT.INPUT);
  });
});

describe("verify (remote), artifacts, pull over file://", () => {
  it("verify downloads to a temp dir and checks everything", async () => {
    const r = await cli(["verify", remoteUrl, "edge/eu", "--deep"]);
    expect(r.code).toBe(EXIT.OK);
    expect(r.stdout).toMatch(/artifact\s+file:\/\/.* key edge\/eu/);
    // the only artifact is chosen without a key
    expect((await cli(["verify", remoteUrl])).code).toBe(EXIT.OK);
    const missing = await cli(["verify", remoteUrl, "--key", "nope"]);
    expect(missing.code).toBe(EXIT.INPUT);
    expect(missing.stderr).toMatch(/no artifact "nope"/);
  });

  it("artifacts lists the pointer, the payloads and what prune would remove", async () => {
    const r = await cli(["artifacts", remoteUrl]);
    expect(r.code).toBe(EXIT.OK);
    expect(r.stdout).toMatch(/artifact edge\/eu/);
    expect(r.stdout).toMatch(/cursor\s+50 \(created/);
    expect(r.stdout).toMatch(/payloads\s+1 kept, 0 prunable now \(grace 1h0m\)/);
    const j = (await cli(["artifacts", remoteUrl, "--json", "--grace", "0"])).json<{
      artifacts: { key: string; pointer: { cursor: { revision: string } }; payloads: { current: boolean }[] }[];
    }>();
    expect(j.artifacts).toHaveLength(1);
    expect(j.artifacts[0]?.pointer.cursor.revision).toBe("50");
    expect(j.artifacts[0]?.payloads.map((p) => p.current)).toEqual([true]);
    expect((await cli(["artifacts", pathToFileURL(join(tmp.path, "no-remote")).href])).code).toBe(EXIT.INPUT);
    expect((await cli(["artifacts", "ftp://x/y"])).code).toBe(EXIT.USAGE);
    expect((await cli(["artifacts", "azure://c/p"])).stderr).toMatch(/no Azure credentials/);
  });

  it("artifacts and verify show who exported the artifact (human and --json); 'not recorded' when it set none", async () => {
    const fold = fresh("fold");
    await makeFold(fold, routes(7));
    const dir = fresh("artifact");
    const store = await LevelSnapshotStore.open(fold);
    await store.exportTo(dir, { exporter: "edge-7.eu-west:4242" });
    await store.close();
    const root = fresh("remote-exporter");
    await mkdir(root);
    await new ArtifactTransport(new FsBlobStore(root)).upload("edge/eu", dir);
    const url = pathToFileURL(root).href;

    const a = await cli(["artifacts", url]);
    expect(a.code).toBe(EXIT.OK);
    expect(a.stdout).toMatch(/^ {2}exporter {3}edge-7\.eu-west:4242$/m);
    const aj = (await cli(["artifacts", url, "--json"])).json<{ artifacts: { pointer: { exporter: string } }[] }>();
    expect(aj.artifacts[0]?.pointer.exporter).toBe("edge-7.eu-west:4242");

    const v = await cli(["verify", url]);
    expect(v.code).toBe(EXIT.OK);
    expect(v.stdout).toMatch(/^exporter\s+edge-7\.eu-west:4242$/m);
    const local = await cli(["verify", dir, "--json"]);
    expect(local.json()).toMatchObject({
      ok: true,
      manifest: { exporter: "edge-7.eu-west:4242", cursor: { revision: "7" } },
    });

    // The artifact published without an exporter says so.
    expect((await cli(["artifacts", remoteUrl])).stdout).toMatch(/^ {2}exporter {3}not recorded$/m);
    const noneJson = (await cli(["artifacts", remoteUrl, "--json"])).json<{
      artifacts: { pointer: { exporter: null } }[];
    }>();
    expect(noneJson.artifacts[0]?.pointer.exporter).toBeNull();
    expect((await cli(["verify", artifact])).stdout).toMatch(/^exporter\s+not recorded$/m);
    expect((await cli(["verify", artifact, "--json"])).json()).toMatchObject({ manifest: { exporter: null } });
  });

  it("pull imports a verified fold that inspects to the artifact's cursor", async () => {
    const dest = fresh("pulled");
    const r = await cli(["pull", remoteUrl, dest, "--key", "edge/eu"]);
    expect(r.code).toBe(EXIT.OK);
    expect(r.stdout).toMatch(/cursor\s+50 \(resume the watch from here\)/);
    expect(r.stdout).toMatch(/entries\s+50/);
    const i = (await cli(["inspect", dest, "--json"])).json<{ entries: number; cursor: { revision: string } }>();
    expect(i).toMatchObject({ entries: 50, cursor: { revision: "50" } });
    expect((await readdir(tmp.path)).filter((f) => f.startsWith(".slipstream-"))).toEqual([]);
  });

  it("pull refuses an occupied destination (exit 5) and a missing parent (exit 3), touching nothing", async () => {
    const dest = fresh("occupied");
    await mkdir(dest);
    await writeFile(join(dest, "keep.txt"), "mine");
    const r = await cli(["pull", remoteUrl, dest]);
    expect(r.code).toBe(EXIT.REFUSED);
    expect(r.stderr).toMatch(/not empty; refusing/);
    expect(await snapshotDir(dest)).toEqual(["keep.txt"]);
    const orphan = join(tmp.path, "no-parent", "fold");
    expect((await cli(["pull", remoteUrl, orphan])).code).toBe(EXIT.INPUT);
    expect(await readdir(tmp.path)).not.toContain("no-parent");
  });

  it("a corrupt remote payload: pull exits 1, nothing at the destination, no leftovers; verify says why", async () => {
    const root = fresh("remote-bad");
    await mkdir(root);
    const store = new FsBlobStore(root);
    const res = await new ArtifactTransport(store).upload("k", artifact);
    // Flip one byte in the middle of the stored tar (a payload file's contents).
    const tarPath = join(root, ...res.payloadKey.split("/"));
    const tar = await readFile(tarPath);
    tar[tar.length >> 1] = (tar[tar.length >> 1] ?? 0) ^ 0xff;
    await writeFile(tarPath, tar);
    const url = pathToFileURL(root).href;
    const parent = fresh("parent");
    await mkdir(parent);
    const dest = join(parent, "fold");
    const r = await cli(["pull", url, dest]);
    expect(r.code).toBe(EXIT.PROBLEM);
    expect(r.stderr).toMatch(/checksum mismatch|disagrees|not a valid/);
    expect(await readdir(parent)).toEqual([]);
    const v = await cli(["verify", url, "--json"]);
    expect(v.code).toBe(EXIT.PROBLEM);
    expect(v.json<{ ok: boolean; problems: { kind: string }[] }>().ok).toBe(false);
  });

  it("with --json, pull reports cursor, entries and bytes", async () => {
    const dest = fresh("pulled-json");
    const r = await cli(["pull", remoteUrl, dest, "--json"]);
    expect(r.code).toBe(EXIT.OK);
    const j = r.json<{ cursor: { revision: string }; entries: number; downloadedBytes: number }>();
    expect(j.cursor.revision).toBe("50");
    expect(j.entries).toBe(50);
    expect(j.downloadedBytes).toBeGreaterThan(0);
  });

  it("draws a progress bar with bytes, rate and ETA on a terminal", async () => {
    const dest = fresh("pulled-tty");
    const r = await cli(["pull", remoteUrl, dest], { isTTY: true });
    expect(r.code).toBe(EXIT.OK);
    expect(r.stderr).toMatch(/download\s+\|█+\| 100% ([\d.]+ [KMG]?i?B)\/\1 [\d.]+ [KMG]?i?B\/s ETA \S+/);
    expect(r.stderr).toMatch(/import/);
  });
});

describe("partial artifacts", () => {
  it("verify, artifacts and inspect show the scope; --deep opens a partial artifact for its own scope", async () => {
    const fold = fresh("fold");
    await makeFold(fold, routes(50));
    const store = await LevelSnapshotStore.open(fold);
    const dir = fresh("partial");
    // route.0001 … route.0009: the ten keys of "route.000"
    await store.exportTo(dir, { scope: { kind: "prefix", prefix: "route.000" } });
    await store.close();

    const r = await cli(["verify", dir, "--deep"]);
    expect(r.code).toBe(EXIT.OK);
    expect(r.stdout).toMatch(/^scope\s+partial: "route\.000"$/m);
    const j = (await cli(["verify", dir, "--deep", "--json"])).json<{ ok: boolean; manifest: { scope: string[] } }>();
    expect(j.ok).toBe(true);
    expect(j.manifest.scope).toEqual(["route.000"]);
    // A whole-bucket artifact has no scope line and a null scope.
    expect((await cli(["verify", artifact])).stdout).not.toMatch(/^scope/m);
    expect(
      (await cli(["verify", artifact, "--json"])).json<{ manifest: { scope: unknown } }>().manifest.scope,
    ).toBeNull();

    const remote = fresh("remote");
    await mkdir(remote);
    await new ArtifactTransport(new FsBlobStore(remote)).upload("edge/partial", dir);
    const a = await cli(["artifacts", pathToFileURL(remote).href]);
    expect(a.code).toBe(EXIT.OK);
    expect(a.stdout).toMatch(/scope\s+partial: "route\.000"/);
    const aj = (await cli(["artifacts", pathToFileURL(remote).href, "--json"])).json<{
      artifacts: { pointer: { scope: string[] | null } }[];
    }>();
    expect(aj.artifacts[0]?.pointer.scope).toEqual(["route.000"]);

    const imported = fresh("imported");
    const s = await LevelSnapshotStore.import(dir, imported, { scope: { kind: "prefix", prefix: "route.0001" } });
    expect(await s.count()).toBe(1);
    await s.close();
    const i = await cli(["inspect", imported]);
    expect(i.code).toBe(EXIT.OK);
    expect(i.stdout).toMatch(/^scope\s+partial: "route\.0001"$/m);
    expect((await cli(["inspect", imported, "--json"])).json<{ scope: string[] }>().scope).toEqual(["route.0001"]);
    expect((await cli(["inspect", fold, "--json"])).json<{ scope: unknown }>().scope).toBeNull();
  });

  it("pull refuses a partial artifact for a whole fold (exit 1, nothing written); --prefix keeps only those keys", async () => {
    const fold = fresh("fold");
    await makeFold(fold, routes(50));
    const store = await LevelSnapshotStore.open(fold);
    const dir = fresh("partial");
    await store.exportTo(dir, { scope: { kind: "prefix", prefix: "route.00" } });
    await store.close();
    const remote = fresh("remote");
    await mkdir(remote);
    const url = pathToFileURL(remote).href;
    await new ArtifactTransport(new FsBlobStore(remote)).upload("edge/partial", dir);

    const dest = fresh("pulled");
    const whole = await cli(["pull", url, dest, "--json"]);
    expect(whole.code).toBe(EXIT.PROBLEM);
    expect(whole.stderr).toMatch(/SCOPE_NOT_COVERED|does not cover/);
    await expect(readdir(dest)).rejects.toThrow();
    const wider = await cli(["pull", url, dest, "--prefix", "route.", "--no-progress"]);
    expect(wider.code).toBe(EXIT.PROBLEM);
    await expect(readdir(dest)).rejects.toThrow();

    const r = await cli(["pull", url, dest, "--prefix", "route.0001", "--prefix", "route.0002", "--no-progress"]);
    expect(r.code).toBe(EXIT.OK);
    expect(r.stdout).toMatch(/^entries\s+2$/m);
    expect(r.stdout).toMatch(/^scope\s+partial: "route\.0001", "route\.0002"$/m);
    expect((await cli(["inspect", dest, "--json"])).json<{ scope: string[] }>().scope).toEqual([
      "route.0001",
      "route.0002",
    ]);
  });
});
