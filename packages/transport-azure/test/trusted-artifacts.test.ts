import type { BlobServiceClient } from "@azure/storage-blob";
import { type AzuriteHandle, startAzurite } from "@slipstream/testkit";
import { trustedArtifactSuite } from "@slipstream/transport";
import { afterAll, beforeAll, describe, it } from "vitest";
import { AzureBlobStore } from "../src/index.js";
import { freshContainer, serviceFor } from "./helpers.js";

let azurite: AzuriteHandle | undefined;
let service: BlobServiceClient;

beforeAll(async () => {
  azurite = await startAzurite();
  service = serviceFor(azurite);
});
afterAll(() => azurite?.close());

trustedArtifactSuite({
  name: "AzureBlobStore on Azurite",
  describe,
  it: (name, fn) => it(name, fn, 180_000),
  factory: async () => {
    const container = await freshContainer(service, "trust");
    return {
      store: new AzureBlobStore({ container, prefix: "tenant-a/slipstream", timeoutMs: 30_000 }),
      cleanup: async () => {
        await container.delete();
      },
    };
  },
});
