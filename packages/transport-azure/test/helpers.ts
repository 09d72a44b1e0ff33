import { randomBytes } from "node:crypto";
import { BlobServiceClient, type ContainerClient, type StoragePipelineOptions } from "@azure/storage-blob";
import { type AzuriteHandle, startAzurite } from "@slipstream/testkit";
import { afterAll, beforeAll } from "vitest";

/**
 * A client as a user would configure one for tests: short SDK retries, so that a dead server
 * surfaces within a test's time (the store's own timeoutMs bounds every wait regardless).
 */
export function serviceFor(azurite: AzuriteHandle, options: StoragePipelineOptions = {}): BlobServiceClient {
  return BlobServiceClient.fromConnectionString(azurite.connectionString, {
    retryOptions: { maxTries: 2, retryDelayInMs: 50, maxRetryDelayInMs: 200 },
    ...options,
  });
}

/** Azurite and a client of it, for the tests of one file. */
export interface LiveAzurite {
  readonly azurite: AzuriteHandle;
  readonly service: BlobServiceClient;
}

/**
 * Starts Azurite before the file's tests (with a {@link serviceFor} client) and stops it after
 * them. Read the fields inside tests, once `beforeAll` ran.
 */
export function useAzurite(): LiveAzurite {
  let azurite: AzuriteHandle | undefined;
  let service: BlobServiceClient | undefined;
  beforeAll(async () => {
    azurite = await startAzurite();
    service = serviceFor(azurite);
  });
  afterAll(() => azurite?.close());
  const ready = <T>(v: T | undefined): T => {
    if (v === undefined) throw new Error("useAzurite: Azurite is not started yet (read it inside a test)");
    return v;
  };
  return {
    get azurite() {
      return ready(azurite);
    },
    get service() {
      return ready(service);
    },
  };
}

/** A fresh, uniquely named container (names: 3–63 lowercase letters, digits and hyphens). */
export async function freshContainer(service: BlobServiceClient, label: string): Promise<ContainerClient> {
  const container = service.getContainerClient(`${label}-${randomBytes(6).toString("hex")}`);
  await container.create();
  return container;
}

/** Every blob name in a container, straight from the service (not through the store). */
export async function blobNames(container: ContainerClient): Promise<string[]> {
  const names: string[] = [];
  for await (const item of container.listBlobsFlat()) names.push(item.name);
  return names.sort();
}
