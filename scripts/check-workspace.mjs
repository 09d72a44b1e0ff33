#!/usr/bin/env node
// Checks that every workspace package (packages/*, apps/*) is wired the same way, so the
// per-package commands a contributor runs cannot drift from what CI runs.
//
//   node scripts/check-workspace.mjs [rootDir]      (rootDir defaults to this repository)
//
// Every package with a test/ directory:
//   - has a vitest.config.ts that is exactly `packageTestConfig(import.meta.url)` from the
//     root vitest.shared.ts (the root `vitest run` runs these configs as its projects);
//   - has `"test": "vitest run"` (so `pnpm test`, `pnpm --filter <pkg> test` and
//     `turbo run test` run that package's tests and nothing else).
// Every published (non-private) package:
//   - declares the same `engines.node` range as the root package.json;
//   - exports `types` and `default` for ".", with the `@slipstream/source` condition first
//     (workspace only) and a `publishConfig.exports` that is the same map WITHOUT that
//     condition (what pnpm writes into the packed package.json);
//   - ships `dist` and its README.
//
// Exit code 0 when clean, 1 with one line per violation otherwise.

import { existsSync, readdirSync, readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { isDeepStrictEqual } from "node:util";

const SOURCE_CONDITION = "@slipstream/source";
const CONFIG_TEXT =
  'import { packageTestConfig } from "../../vitest.shared.ts";\n\nexport default packageTestConfig(import.meta.url);\n';

/** The exports map with the workspace-only source condition removed everywhere. */
export function stripSourceCondition(exports) {
  if (exports === null || typeof exports !== "object") return exports;
  if (Array.isArray(exports)) return exports.map(stripSourceCondition);
  const out = {};
  for (const [k, v] of Object.entries(exports)) if (k !== SOURCE_CONDITION) out[k] = stripSourceCondition(v);
  return out;
}

/** @returns {string[]} one message per violation */
export function checkWorkspace(root) {
  const problems = [];
  const rootPkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8"));
  const engines = rootPkg.engines?.node;
  if (!engines) problems.push("package.json: the root declares no engines.node");
  for (const group of ["packages", "apps"]) {
    const groupDir = join(root, group);
    if (!existsSync(groupDir)) continue;
    for (const name of readdirSync(groupDir).sort()) {
      const dir = join(groupDir, name);
      const pkgFile = join(dir, "package.json");
      if (!existsSync(pkgFile)) continue;
      const at = `${group}/${name}`;
      const pkg = JSON.parse(readFileSync(pkgFile, "utf8"));
      if (existsSync(join(dir, "test"))) {
        const cfg = join(dir, "vitest.config.ts");
        if (!existsSync(cfg)) problems.push(`${at}: has test/ but no vitest.config.ts (copy one from packages/core)`);
        else if (readFileSync(cfg, "utf8") !== CONFIG_TEXT)
          problems.push(
            `${at}/vitest.config.ts: must be exactly packageTestConfig(import.meta.url) from vitest.shared.ts`,
          );
        if (pkg.scripts?.test !== "vitest run")
          problems.push(
            `${at}/package.json: scripts.test must be "vitest run" (is ${JSON.stringify(pkg.scripts?.test)})`,
          );
      }
      if (pkg.private) continue;
      if (pkg.engines?.node !== engines)
        problems.push(`${at}/package.json: engines.node must be ${JSON.stringify(engines)} like the root`);
      const dot = pkg.exports?.["."];
      if (!dot || typeof dot !== "object" || !dot.types || !dot.default) {
        problems.push(`${at}/package.json: exports["."] needs "types" and "default"`);
        continue;
      }
      if (Object.keys(dot)[0] !== SOURCE_CONDITION)
        problems.push(
          `${at}/package.json: exports["."] must list "${SOURCE_CONDITION}" first (tests run against src/)`,
        );
      if (!isDeepStrictEqual(pkg.publishConfig?.exports, stripSourceCondition(pkg.exports)))
        problems.push(
          `${at}/package.json: publishConfig.exports must equal exports without "${SOURCE_CONDITION}": ` +
            JSON.stringify(stripSourceCondition(pkg.exports)),
        );
      for (const f of ["dist", "README.md"])
        if (!pkg.files?.includes(f)) problems.push(`${at}/package.json: files must include "${f}"`);
    }
  }
  return problems;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const root = resolve(process.argv[2] ?? join(dirname(fileURLToPath(import.meta.url)), ".."));
  const problems = checkWorkspace(root);
  for (const p of problems) console.error(p);
  if (problems.length) process.exit(1);
  console.log("check-workspace: every package is wired to the shared test config and publish rules");
}
