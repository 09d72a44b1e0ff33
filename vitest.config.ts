import { defineConfig } from "vitest/config";

// One root run = every package's own vitest.config.ts as a project (see vitest.shared.ts).
// scripts/check-workspace.mjs fails when a package with tests has no config, so nothing is
// left out of this run.
export default defineConfig({
  test: {
    projects: ["packages/*/vitest.config.ts", "apps/*/vitest.config.ts"],
    reporters: ["default"],
  },
});
