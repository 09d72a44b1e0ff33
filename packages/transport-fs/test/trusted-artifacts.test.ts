import { tempDir } from "@slipstream/testkit";
import { trustedArtifactSuite } from "@slipstream/transport";
import { describe, it } from "vitest";
import { FsBlobStore } from "../src/index.js";

trustedArtifactSuite({
  name: "FsBlobStore",
  describe,
  it: (name, fn) => it(name, fn, 120_000),
  factory: async () => {
    const dir = await tempDir("slipstream-fs-trust-");
    return { store: new FsBlobStore(dir.path), cleanup: dir.cleanup };
  },
});
