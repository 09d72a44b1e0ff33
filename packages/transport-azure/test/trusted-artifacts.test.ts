import { trustedArtifactSuite } from "@slipstream/transport";
import { describe, it } from "vitest";
import { AzureBlobStore } from "../src/index.js";
import { freshContainer, useAzurite } from "./helpers.js";

const live = useAzurite();

trustedArtifactSuite({
  name: "AzureBlobStore on Azurite",
  describe,
  it: (name, fn) => it(name, fn, 180_000),
  factory: async () => {
    const container = await freshContainer(live.service, "trust");
    return {
      store: new AzureBlobStore({ container, prefix: "tenant-a/slipstream", timeoutMs: 30_000 }),
      cleanup: async () => {
        await container.delete();
      },
    };
  },
});
