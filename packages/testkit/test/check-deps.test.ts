import { execFile } from "node:child_process";
import { mkdir, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { describe, expect, it } from "vitest";
import { repoRoot, tempDir } from "../src/index.js";

const SCRIPT = join(repoRoot(), "scripts", "check-deps.mjs");

type Files = Record<string, string>;

const pkg = (name: string, fields: Record<string, unknown> = {}): string =>
  JSON.stringify({ name, version: "0.0.0", type: "module", ...fields }, null, 2);

/** A tiny workspace that follows every rule. Each case below breaks exactly one. */
function cleanWorkspace(): Files {
  return {
    "pnpm-workspace.yaml": "packages:\n  - packages/*\n  - apps/*\n",
    "packages/core/package.json": pkg("@slipstream/core", { dependencies: {} }),
    "packages/core/src/index.ts": [
      'import { readFile } from "node:fs/promises";',
      'import path from "path";',
      'export { thing } from "./thing.js";',
      '// import forbidden from "left-pad";',
      "export const note = \"import x from 'left-pad'\";",
      'export const load = () => readFile(path.join("a", "b"));',
    ].join("\n"),
    "packages/core/src/thing.ts": "export const thing = 1;\n",
    "packages/nats/package.json": pkg("@slipstream/nats", {
      dependencies: { "@slipstream/core": "workspace:*", "@nats-io/kv": "3.4.0" },
      devDependencies: { "@slipstream/testkit": "workspace:*" },
    }),
    "packages/nats/src/index.ts":
      'import { Kvm } from "@nats-io/kv";\nimport type { KvEntry } from "@slipstream/core";\nexport { Kvm };\n',
    "packages/nats/test/a.test.ts":
      'import { it } from "vitest";\nimport { startNats } from "@slipstream/testkit";\nit("x", () => {});\n',
    "packages/fold/package.json": pkg("@slipstream/fold", {
      dependencies: { "@slipstream/core": "workspace:*" },
      devDependencies: { "@slipstream/nats": "workspace:*", "@slipstream/testkit": "workspace:*" },
    }),
    "packages/fold/src/index.ts":
      'export * from "@slipstream/core";\nexport const lazy = () => import("@slipstream/core");\n',
    "packages/fold/test/fold.test.ts":
      'import { describe } from "vitest";\nimport { connect } from "@slipstream/nats";\nimport { startNats } from "@slipstream/testkit";\n',
    "packages/transport/package.json": pkg("@slipstream/transport", {
      dependencies: { "@slipstream/core": "workspace:*", "tar-stream": "3.2.2" },
    }),
    "packages/transport/src/index.ts": 'import tar from "tar-stream";\nexport { tar };\n',
    "packages/transport-s3/package.json": pkg("@slipstream/transport-s3", {
      dependencies: {
        "@slipstream/core": "workspace:*",
        "@slipstream/transport": "workspace:*",
        "@aws-sdk/client-s3": "3.1175.0",
        "@aws-sdk/lib-storage": "3.1175.0",
      },
    }),
    "packages/transport-s3/src/index.ts":
      'import { S3Client } from "@aws-sdk/client-s3";\nimport { Upload } from "@aws-sdk/lib-storage";\nimport type { BlobStore } from "@slipstream/transport";\n',
    "packages/testkit/package.json": pkg("@slipstream/testkit", { private: true }),
    "packages/testkit/src/index.ts": 'import { spawn } from "node:child_process";\nexport { spawn };\n',
    "apps/demo/package.json": pkg("@slipstream/demo", {
      private: true,
      dependencies: { "@slipstream/core": "workspace:*", "@slipstream/testkit": "workspace:*" },
    }),
    "apps/demo/src/index.ts": 'import { startNats } from "@slipstream/testkit";\nimport "@slipstream/core";\n',
  };
}

async function writeWorkspace(root: string, files: Files): Promise<void> {
  for (const [rel, content] of Object.entries(files)) {
    const file = join(root, rel);
    await mkdir(dirname(file), { recursive: true });
    await writeFile(file, content);
  }
}

function runCheck(root: string): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [SCRIPT, root], (err, stdout, stderr) => {
      const code = err ? (typeof err.code === "number" ? err.code : 1) : 0;
      resolve({ code, out: `${stdout}${stderr}` });
    });
  });
}

async function check(mutate: (files: Files) => void): Promise<{ code: number; out: string }> {
  await using dir = await tempDir("check-deps-");
  const files = cleanWorkspace();
  mutate(files);
  await writeWorkspace(dir.path, files);
  return await runCheck(dir.path);
}

const addDeps = (files: Files, path: string, field: string, deps: Record<string, string>): void => {
  const json = JSON.parse(files[path] ?? "{}") as Record<string, Record<string, string>>;
  json[field] = { ...json[field], ...deps };
  files[path] = JSON.stringify(json);
};

describe("scripts/check-deps.mjs", () => {
  it("passes on a clean workspace (comments and strings do not count as imports)", async () => {
    const r = await check(() => {});
    expect(r.out).toMatch(/check-deps: ok \(7 packages/);
    expect(r.code).toBe(0);
  });

  const failing: [string, (f: Files) => void, RegExp][] = [
    [
      "fold src imports @slipstream/nats (even as a declared devDependency)",
      (f) => {
        f["packages/fold/src/watch.ts"] = 'import { connect } from "@slipstream/nats";\n';
      },
      /packages\/fold\/src\/watch\.ts:1: .*must not use @slipstream\/nats/,
    ],
    [
      "fold src imports @slipstream/nats dynamically",
      (f) => {
        f["packages/fold/src/lazy.ts"] = '\n\nexport const n = () => import("@slipstream/nats");\n';
      },
      /packages\/fold\/src\/lazy\.ts:3: /,
    ],
    [
      "lease lists @slipstream/nats in dependencies",
      (f) => {
        f["packages/lease/package.json"] = pkg("@slipstream/lease", {
          dependencies: { "@slipstream/core": "workspace:*", "@slipstream/nats": "workspace:*" },
        });
      },
      /packages\/lease\/package\.json: @slipstream\/lease must not depend on @slipstream\/nats/,
    ],
    [
      "src imports an undeclared package",
      (f) => {
        f["packages/transport/src/extra.ts"] = 'export { default } from "left-pad";\n';
      },
      /packages\/transport\/src\/extra\.ts:1: imports "left-pad" but @slipstream\/transport does not declare/,
    ],
    [
      "src imports a devDependency",
      (f) => {
        addDeps(f, "packages/transport/package.json", "devDependencies", { s3rver: "3.7.1" });
        f["packages/transport/src/dev.ts"] = 'import S3rver from "s3rver";\n';
      },
      /only a devDependency/,
    ],
    [
      "test imports an undeclared package",
      (f) => {
        f["packages/fold/test/more.test.ts"] = 'import { it } from "vitest";\nimport { x } from "@slipstream/lease";\n';
      },
      /packages\/fold\/test\/more\.test\.ts:2: imports "@slipstream\/lease" .* devDependencies/,
    ],
    [
      "core gets a runtime dependency",
      (f) => {
        addDeps(f, "packages/core/package.json", "dependencies", { "tiny-lib": "1.0.0" });
        f["packages/core/src/dep.ts"] = 'import t from "tiny-lib";\n';
      },
      /@slipstream\/core must have no runtime dependencies/,
    ],
    [
      "a transport package depends on @slipstream/nats",
      (f) => {
        addDeps(f, "packages/transport-s3/package.json", "dependencies", { "@slipstream/nats": "workspace:*" });
      },
      /transport package @slipstream\/transport-s3 may depend at runtime only on/,
    ],
    [
      "a transport package uses two SDKs",
      (f) => {
        addDeps(f, "packages/transport-s3/package.json", "dependencies", { "@azure/storage-blob": "12.32.0" });
      },
      /may use one SDK/,
    ],
    [
      "a package src imports the testkit",
      (f) => {
        addDeps(f, "packages/nats/package.json", "dependencies", { "@slipstream/testkit": "workspace:*" });
        f["packages/nats/src/helper.ts"] = 'import { startNats } from "@slipstream/testkit";\n';
      },
      /src imports the private @slipstream\/testkit/,
    ],
    [
      "runtime dependencies form a cycle",
      (f) => {
        addDeps(f, "packages/core/package.json", "dependencies", { "@slipstream/fold": "workspace:*" });
      },
      /runtime dependency cycle: .*@slipstream\/(core|fold) -> /,
    ],
  ];

  it.each(failing)("fails when %s", async (_name, mutate, message) => {
    const r = await check(mutate);
    expect(r.code).toBe(1);
    expect(r.out).toMatch(message);
  });
});
