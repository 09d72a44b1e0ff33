// The one vitest configuration every workspace package uses (through its own
// vitest.config.ts), so `pnpm test` inside a package, `pnpm --filter <pkg> test`,
// `turbo run test` and the root `vitest run` (which runs every package's config as a
// project) all run the same tests the same way.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { defineProject } from "vitest/config";

/** The export condition that points workspace imports at `src/`, so tests need no build. */
export const SOURCE_CONDITION = "@slipstream/source";

/**
 * The vitest project of one workspace package.
 *
 * @param packageUrl - `import.meta.url` of the package's `vitest.config.ts`
 */
export function packageTestConfig(packageUrl: string) {
  const dir = fileURLToPath(new URL(".", packageUrl));
  const { name } = JSON.parse(readFileSync(join(dir, "package.json"), "utf8")) as { name: string };
  return defineProject({
    root: dir,
    resolve: {
      // TanStack-style source condition: tests run against src/ without a build.
      conditions: [SOURCE_CONDITION],
    },
    ssr: { resolve: { conditions: [SOURCE_CONDITION] } },
    test: {
      name,
      root: dir,
      include: ["test/**/*.test.ts"],
      testTimeout: 60_000,
      hookTimeout: 60_000,
      pool: "forks",
      // Memory-bound tests (the BlobStore conformance suite) collect before judging a peak:
      // Node 22+ frees dead Buffers late enough to look like growth otherwise.
      execArgv: ["--expose-gc"],
    },
  });
}
