import { execFile } from "node:child_process";
import { mkdir, mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createStageBeside, mkdtempOwned, sweepAbandonedTemps } from "../src/index.js";

const PREFIX = ".slipstream-test-";
let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "slipstream-owned-"));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Makes an owned temp dir from a child process that has exited by the time this returns. */
async function fromDeadProcess(parent: string, prefix: string): Promise<string> {
  const code = `const { mkdtempOwned } = await import(${JSON.stringify(new URL("../src/owned-temp.ts", import.meta.url).href)});
const d = await mkdtempOwned(${JSON.stringify(parent)}, ${JSON.stringify(prefix)});
const { writeFile } = await import("node:fs/promises");
await writeFile(d + "/payload", "a whole fold");
process.stdout.write(d);`;
  const { stdout } = await promisify(execFile)(process.execPath, [
    "--import",
    "tsx",
    "--input-type=module",
    "-e",
    code,
  ]);
  return stdout.trim();
}

describe("owned temporary directories", () => {
  it("a sweep removes a dead process's dirs and keeps live, foreign and ownerless ones", async () => {
    const dead = await fromDeadProcess(dir, PREFIX);
    const mine = await mkdtempOwned(dir, PREFIX);
    await mkdir(join(dir, `${PREFIX}0badc0de.1-abcdef`)); // another host
    await mkdir(join(dir, `${PREFIX}legacy1`)); // no owner in the name
    await mkdir(join(dir, "unrelated"));
    await writeFile(join(dir, `${PREFIX}file`), "x");
    const removed = await sweepAbandonedTemps(dir, PREFIX);
    expect(removed).toEqual([dead.slice(dir.length + 1)]);
    expect((await readdir(dir)).sort()).toEqual(
      [
        mine.slice(dir.length + 1),
        `${PREFIX}0badc0de.1-abcdef`,
        `${PREFIX}legacy1`,
        "unrelated",
        `${PREFIX}file`,
      ].sort(),
    );
  });

  it("a sweep of a missing directory removes nothing and does not throw", async () => {
    expect(await sweepAbandonedTemps(join(dir, "missing"), PREFIX)).toEqual([]);
  });

  it("createStageBeside removes the stage a crashed process left beside the destination", async () => {
    const dead = await fromDeadProcess(dir, ".slipstream-import-");
    const stage = await createStageBeside(join(dir, "fold"), ".slipstream-import-");
    expect(await readdir(dir)).toEqual([stage.slice(dir.length + 1)]);
    expect(dead).not.toBe(stage);
  });
});
