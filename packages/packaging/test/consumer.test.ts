/**
 * A user's project, outside the workspace: the published packages packed with `pnpm pack`,
 * installed from those tarballs with npm into a fresh directory, type-checked with the
 * user's own TypeScript, then the README example (apps/demo/src/readme-example.ts, copied
 * verbatim) run against a real nats-server.
 */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { copyFile, cp, mkdir, readFile, writeFile } from "node:fs/promises";
import { join, relative } from "node:path";
import { promisify } from "node:util";
import { connect } from "@slipstream/nats";
import {
  hasNats,
  type NatsServerHandle,
  natsMissingReason,
  repoRoot,
  startNats,
  type TempDir,
  tempDir,
} from "@slipstream/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { packAll, publishedPackages } from "./pack.js";

const run = promisify(execFile);
const FIXTURE = join(import.meta.dirname, "consumer");
const TYPESCRIPT = "5.9.3";
const TYPES_NODE = "20.19.43";

/** The version the workspace itself tests a dependency at (a devDependency of some package). */
function workspacePin(name: string): string {
  for (const p of publishedPackages()) {
    const v = (p.manifest.devDependencies as Record<string, string> | undefined)?.[name];
    if (v) return v;
  }
  throw new Error(`no workspace package pins ${name}`);
}

async function node(cwd: string, script: string, args: string[]): Promise<string> {
  const { stdout } = await run(process.execPath, [script, ...args], { cwd, maxBuffer: 16 * 1024 * 1024 });
  return stdout;
}

/** Runs main.js until it says "ready", lets it fold for `settleMs`, SIGTERMs it, waits for exit 0. */
async function runExampleOnce(cwd: string, url: string, foldDir: string, settleMs: number): Promise<void> {
  const child: ChildProcess = spawn(process.execPath, ["dist/main.js", url, foldDir], {
    cwd,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  child.stdout?.on("data", (c: Buffer) => (out += c.toString()));
  child.stderr?.on("data", (c: Buffer) => (out += c.toString()));
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  await new Promise<void>((resolve, reject) => {
    const onData = () => out.includes("ready") && resolve();
    child.stdout?.on("data", onData);
    void exited.then((code) => reject(new Error(`main.js exited (${code}) before it was ready:\n${out}`)));
  });
  await new Promise((r) => setTimeout(r, settleMs));
  child.kill("SIGTERM");
  // The example's SIGTERM handler stops the watch and closes the store and the connection;
  // the process must then end on its own (nothing left open), with status 0.
  expect(await exited, out).toBe(0);
}

describe("a consumer project built from the packed tarballs", () => {
  if (!hasNats("any")) it.skip(`README example against nats-server: ${natsMissingReason("any")}`, () => {});

  let work: TempDir;
  let nats: NatsServerHandle;
  let app: string;

  beforeAll(async () => {
    work = await tempDir("slipstream-consumer-");
    const tarballs = join(work.path, "tarballs");
    await mkdir(tarballs);
    const packed = await packAll(publishedPackages(), tarballs);
    app = join(work.path, "app");
    await cp(FIXTURE, app, { recursive: true });
    await copyFile(join(repoRoot(), "apps", "demo", "src", "readme-example.ts"), join(app, "src", "readme-example.ts"));
    const fromTarball = Object.fromEntries(
      [...packed.values()].map((p) => [p.name, `file:${relative(app, p.tarball)}`]),
    );
    await writeFile(
      join(app, "package.json"),
      `${JSON.stringify(
        {
          name: "slipstream-consumer",
          private: true,
          type: "module",
          dependencies: {
            ...fromTarball,
            "@aws-sdk/client-s3": workspacePin("@aws-sdk/client-s3"),
            "@aws-sdk/lib-storage": workspacePin("@aws-sdk/lib-storage"),
            "@azure/storage-blob": workspacePin("@azure/storage-blob"),
          },
          devDependencies: { "@types/node": TYPES_NODE, typescript: TYPESCRIPT },
          // Our packages depend on each other by version; these are not in a registry yet.
          overrides: fromTarball,
        },
        null,
        2,
      )}\n`,
    );
    await run("npm", ["install", "--no-audit", "--no-fund", "--loglevel=error"], {
      cwd: app,
      maxBuffer: 64 * 1024 * 1024,
    });
    if (hasNats("any")) nats = await startNats();
  }, 600_000);

  afterAll(async () => {
    await nats?.close();
    await work?.cleanup();
  });

  it("installed every package from its tarball, one copy each", async () => {
    const lock = JSON.parse(await readFile(join(app, "package-lock.json"), "utf8")) as {
      packages: Record<string, { version?: string; resolved?: string }>;
    };
    const ours = Object.entries(lock.packages).filter(([p]) => p.includes("node_modules/@slipstream/"));
    expect(ours.map(([p]) => p).sort()).toEqual(publishedPackages().map((p) => `node_modules/${p.name}`));
    for (const [p, entry] of ours) expect(entry.resolved, p).toMatch(/^file:.*\.tgz$/);
  });

  it("type-checks with the consumer's own TypeScript (strict, NodeNext, lib checks on)", async () => {
    const r = await run(process.execPath, [join("node_modules", "typescript", "bin", "tsc"), "-p", "."], {
      cwd: app,
    }).catch((e: { stdout: string; stderr: string }) => ({ ...e, failed: true }));
    expect("failed" in r ? `${r.stdout}${r.stderr}` : "").toBe("");
  });

  it("imports every published package by name", async () => {
    const r = JSON.parse(await node(app, "dist/all.js", [])) as {
      exports: Record<string, number>;
      is: boolean;
      classes: string[];
    };
    expect(Object.keys(r.exports).sort()).toEqual(publishedPackages().map((p) => p.name));
    for (const [name, n] of Object.entries(r.exports)) expect(n, name).toBeGreaterThan(0);
    expect(r.is).toBe(true);
    expect(new Set(r.classes)).toEqual(new Set(["function"]));
  });

  it("installs the slipstream command from @slipstream/cli", async () => {
    const cli = publishedPackages().find((p) => p.name === "@slipstream/cli");
    if (!cli) return; // the operator CLI is not published from this workspace
    const { stdout } = await run(join(app, "node_modules", ".bin", "slipstream"), ["--version"], { cwd: app });
    expect(stdout.trim()).toBe(cli.version);
  });

  it.skipIf(!hasNats("any"))(
    "runs the README example: the fold holds the live route keys, and a restart resumes",
    async () => {
      expect(await node(app, "dist/seed.js", [nats.url])).toContain("seeded");
      const foldDir = join(work.path, "fold-routes");
      const want = { "route.a": "10.0.0.1", "route.c": "10.0.0.3" };
      let got: unknown;
      // The example has no "caught up" signal: run it, stop it, look; every run resumes from
      // the cursor the last one committed, so the fold only ever moves towards the bucket.
      for (let attempt = 1; attempt <= 20; attempt++) {
        await runExampleOnce(app, nats.url, foldDir, 200 * attempt);
        got = JSON.parse(await node(app, "dist/verify.js", [foldDir]));
        if (JSON.stringify(got) === JSON.stringify(want)) break;
      }
      expect(got).toEqual(want);
      // One more run after a change while it was down: only the delta, same result plus it.
      const nc = await connect({ servers: nats.url });
      const routes = await nc.store({ name: "routes" });
      await routes.writer.delete("route.a");
      await routes.writer.put("route.d", new TextEncoder().encode("10.0.0.4"));
      await nc.close();
      const next = { "route.c": "10.0.0.3", "route.d": "10.0.0.4" };
      for (let attempt = 1; attempt <= 20; attempt++) {
        await runExampleOnce(app, nats.url, foldDir, 200 * attempt);
        got = JSON.parse(await node(app, "dist/verify.js", [foldDir]));
        if (JSON.stringify(got) === JSON.stringify(next)) break;
      }
      expect(got).toEqual(next);
    },
  );
});
