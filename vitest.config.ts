import { defineConfig } from "vitest/config";

export default defineConfig({
  resolve: {
    // TanStack-style source condition: tests run against src/ without a build.
    conditions: ["@slipstream/source"],
  },
  ssr: { resolve: { conditions: ["@slipstream/source"] } },
  test: {
    include: ["packages/*/test/**/*.test.ts", "apps/*/test/**/*.test.ts"],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: "forks",
    reporters: ["default"],
  },
});
