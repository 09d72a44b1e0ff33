/**
 * Regression (reliability campaign): a process SIGKILLed inside an export round or a
 * bootstrap skips its `finally`, and its temporary directory — a whole exported fold or a
 * whole download — stayed in the scratch dir for ever, one per crash. The next round or
 * bootstrap now removes the directories of dead owners, and only those.
 */
import { execFile } from "node:child_process";
import { mkdir, readdir } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { mkdtempOwned, TEMP_PREFIX } from "@slipstream/core";
import { MemorySnapshotStore } from "@slipstream/fold";
import { repoRoot, tempDir } from "@slipstream/testkit";
import { ArtifactTransport, importRemote, runExportRound } from "@slipstream/transport";
import { describe, expect, it } from "vitest";
import { FsBlobStore } from "../src/index.js";
import { exporterOf, foldWith, InProcessLease } from "./helpers.js";

/** A temp dir made by a child process that has exited (as after a SIGKILL mid-round). */
async function abandoned(parent: string, prefix: string): Promise<string> {
  const code = `const { mkdtempOwned } = await import("@slipstream/core");
const { writeFile } = await import("node:fs/promises");
const d = await mkdtempOwned(${JSON.stringify(parent)}, ${JSON.stringify(prefix)});
await writeFile(d + "/data", "x".repeat(1000));
process.stdout.write(d);`;
  const { stdout } = await promisify(execFile)(
    process.execPath,
    ["--conditions=@slipstream/source", "--import", "tsx", "--input-type=module", "-e", code],
    { cwd: join(repoRoot(), "packages/transport-fs") },
  );
  return stdout.trim();
}

describe("leftovers of crashed processes", () => {
  it("an export round removes a dead process's round dir and keeps a live one's", async () => {
    await using root = await tempDir("slipstream-leftover-");
    const scratch = join(root.path, "scratch");
    const transport = new ArtifactTransport(new FsBlobStore(join(root.path, "remote")), { prefix: "artifacts" });
    await mkdir(scratch, { recursive: true });
    const dead = await abandoned(scratch, TEMP_PREFIX.exportRound);
    const live = await mkdtempOwned(scratch, TEMP_PREFIX.exportRound); // a concurrent round of this process
    expect(await readdir(scratch)).toHaveLength(2);
    const res = await runExportRound({
      lease: new InProcessLease(),
      ttlMs: 60_000,
      fold: exporterOf(await foldWith(5)),
      transport,
      key: "k",
      scratchDir: scratch,
    });
    expect(res.outcome).toBe("published");
    expect(await readdir(scratch)).toEqual([live.slice(scratch.length + 1)]);
    expect(dead).not.toBe(live);

    // A bootstrap does the same for a dead download.
    await abandoned(scratch, TEMP_PREFIX.bootstrap);
    const store = await importRemote({
      transport,
      key: "k",
      scratchDir: scratch,
      destDir: join(root.path, "fold"),
      open: (art, dest) => MemorySnapshotStore.import(art, dest),
    });
    expect(store.cursor.revision).toBe(5n);
    expect(await readdir(scratch)).toEqual([live.slice(scratch.length + 1)]);
  });
});
