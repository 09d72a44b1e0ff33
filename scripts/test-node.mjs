#!/usr/bin/env node
// Runs the whole vitest suite (every package's project, the same run `npm test` ends
// with) on other Node.js lines than the one running this script.
//
//   node scripts/test-node.mjs 22 24        (default: 22 24)
//
// For each major it makes sure `.cache/node-<major>/bin/node` exists (scripts/setup.mjs
// --node <major> installs it from the npm registry), puts that directory first on PATH (so
// child processes the tests spawn, `npm`, `pnpm exec` and `#!/usr/bin/env node` scripts run
// on it too), and runs `vitest run` from the repository root with it. The runs are
// sequential (the machine has 2 cores and the suites start real servers) and each one's
// wall time is printed. Exit code: 0 when every run passed, 1 otherwise.
//
// The checks that do not depend on the Node version (dependency rules, lint, the type-check
// of the tests) run once, in `npm test`; this script does not repeat them.

import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { delimiter, dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const majors = process.argv.slice(2).filter((a) => !a.startsWith("-"));
if (majors.length === 0) majors.push("22", "24");
for (const m of majors) {
  if (!/^\d+$/.test(m)) {
    console.error(`test-node: want Node major versions such as 22 24, got ${JSON.stringify(m)}`);
    process.exit(2);
  }
}

const setup = spawnSync(process.execPath, [join(ROOT, "scripts", "setup.mjs"), ...majors.map((m) => `--node=${m}`)], {
  cwd: ROOT,
  stdio: "inherit",
});
if (setup.status !== 0) process.exit(1);

const vitest = join(ROOT, "node_modules", "vitest", "vitest.mjs");
const results = [];
for (const major of majors) {
  const binDir = join(ROOT, ".cache", `node-${major}`, "bin");
  const node = join(binDir, "node");
  if (!existsSync(node)) {
    console.error(`test-node: ${node} is missing after setup`);
    process.exit(1);
  }
  const version = spawnSync(node, ["--version"], { encoding: "utf8" }).stdout.trim();
  console.log(`\ntest-node: the whole suite on Node ${version}`);
  const start = Date.now();
  const r = spawnSync(node, [vitest, "run"], {
    cwd: ROOT,
    stdio: "inherit",
    env: {
      ...process.env,
      PATH: `${binDir}${delimiter}${process.env.PATH ?? ""}`,
      // Part of turbo's test hash, so a cached result of one Node line never stands in for another.
      SLIPSTREAM_TEST_NODE: major,
    },
  });
  const secs = (Date.now() - start) / 1000;
  results.push({ version, ok: r.status === 0, secs });
  console.log(`test-node: Node ${version} ${r.status === 0 ? "passed" : "FAILED"} in ${secs.toFixed(0)} s`);
}

console.log("\ntest-node: summary");
for (const { version, ok, secs } of results)
  console.log(`  Node ${version}: ${ok ? "passed" : "FAILED"} (${secs.toFixed(0)} s)`);
process.exit(results.every((r) => r.ok) ? 0 : 1);
