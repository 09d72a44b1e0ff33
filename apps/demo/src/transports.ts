/**
 * Where the demo's artifacts go: a directory, an S3 bucket or an Azure container. The
 * conductor decides (starting s3rver or Azurite through the test kit, or reading a real
 * endpoint from the environment) and hands every node the same serialisable
 * {@link TransportConfig}; each node builds its own client from it.
 */
import { generateKeyPairSync, randomBytes } from "node:crypto";
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { S3Client } from "@aws-sdk/client-s3";
import { BlobServiceClient } from "@azure/storage-blob";
import { manifestSigner, publicKeyId } from "@slipstream/core";
import { startAzurite, startS3rver } from "@slipstream/testkit";
import { ArtifactTransport, type BlobStore, symmetricKeyWrapper } from "@slipstream/transport";
import { AzureBlobStore } from "@slipstream/transport-azure";
import { FsBlobStore } from "@slipstream/transport-fs";
import { S3BlobStore } from "@slipstream/transport-s3";

/** The transports `--transport` accepts. */
export const TRANSPORTS = ["fs", "s3", "azure"] as const;
/** One of {@link TRANSPORTS}. */
export type TransportKind = (typeof TRANSPORTS)[number];

/** Everything a node needs to reach the artifact store (JSON only: it crosses the IPC channel). */
export type TransportConfig =
  | { kind: "fs"; root: string }
  | {
      kind: "s3";
      bucket: string;
      /** Test-server client settings; undefined = the AWS SDK's own environment/credential chain. */
      client?: {
        region: string;
        endpoint: string;
        forcePathStyle: true;
        credentials: { accessKeyId: string; secretAccessKey: string };
      };
      /** s3rver does not enforce If-None-Match/If-Match; real S3 does. */
      conditionalWrites: boolean;
    }
  | { kind: "azure"; connectionString: string; container: string };

/**
 * The fleet's artifact security, made by the conductor for this run and handed to every
 * node (JSON only): exporters sign with the private key, every node trusts only the public
 * key, and payloads are encrypted at rest under the fleet key. In production the private key
 * lives with the exporters only and the keys come from a secret store.
 */
export interface DemoSecurity {
  /** Ed25519 private key (PKCS#8 PEM). */
  signingKeyPem: string;
  /** Its public key (SPKI PEM): the one key every node trusts. */
  trustedKeyPem: string;
  /** The 32-byte fleet key, base64. */
  fleetKey: string;
}

/** Fresh keys for one demo run. */
export function newDemoSecurity(): DemoSecurity & { keyId: string } {
  const { privateKey, publicKey } = generateKeyPairSync("ed25519");
  return {
    signingKeyPem: privateKey.export({ format: "pem", type: "pkcs8" }) as string,
    trustedKeyPem: publicKey.export({ format: "pem", type: "spki" }) as string,
    fleetKey: randomBytes(32).toString("base64"),
    keyId: publicKeyId(publicKey),
  };
}

/** A transport the conductor set up, and how to tear it down. */
export interface DemoTransport {
  config: TransportConfig;
  /** One line for the log: what runs where. */
  describe: string;
  close(): Promise<void>;
}

/**
 * Sets up the chosen transport. `fs` uses a directory under `work`. `s3` uses a real bucket
 * when `DEMO_S3_BUCKET` is set (credentials and endpoint from the usual AWS variables), else
 * starts s3rver. `azure` uses `AZURE_STORAGE_CONNECTION_STRING` (container `DEMO_AZURE_CONTAINER`,
 * default `slipstream-demo`) when set, else starts Azurite.
 */
export async function setUpTransport(
  kind: TransportKind,
  work: string,
  env: NodeJS.ProcessEnv = process.env,
): Promise<DemoTransport> {
  if (kind === "fs") {
    const root = join(work, "object-store");
    await mkdir(root, { recursive: true });
    return { config: { kind, root }, describe: "a directory (filesystem transport)", close: async () => {} };
  }
  if (kind === "s3") {
    if (env.DEMO_S3_BUCKET) {
      return {
        config: { kind, bucket: env.DEMO_S3_BUCKET, conditionalWrites: true },
        describe: `S3 bucket ${env.DEMO_S3_BUCKET} (from the environment)`,
        close: async () => {},
      };
    }
    const s3 = await startS3rver({ bucket: "slipstream-demo" });
    return {
      config: { kind, bucket: s3.bucket, client: s3.client(), conditionalWrites: false },
      describe: `s3rver on ${s3.endpoint} (no conditional writes: the pointer is published in the explicit non-atomic mode)`,
      close: () => s3.close(),
    };
  }
  const container = env.DEMO_AZURE_CONTAINER ?? "slipstream-demo";
  if (env.AZURE_STORAGE_CONNECTION_STRING) {
    const connectionString = env.AZURE_STORAGE_CONNECTION_STRING;
    await BlobServiceClient.fromConnectionString(connectionString).getContainerClient(container).createIfNotExists();
    return {
      config: { kind, connectionString, container },
      describe: `Azure container ${container} (from the environment)`,
      close: async () => {},
    };
  }
  const azurite = await startAzurite({ inMemory: true });
  await BlobServiceClient.fromConnectionString(azurite.connectionString).getContainerClient(container).create();
  return {
    config: { kind, connectionString: azurite.connectionString, container },
    describe: `Azurite on ${azurite.blobEndpoint}`,
    close: () => azurite.close(),
  };
}

/**
 * Builds the artifact transport a node uses; `close` releases its HTTP clients. With
 * `security`, uploads are signed, chunked and encrypted, and downloads accept only artifacts
 * signed by the trusted key (parallel verified chunks, resumable).
 */
export function openTransport(
  config: TransportConfig,
  security?: DemoSecurity,
): { transport: ArtifactTransport; close: () => void } {
  let store: BlobStore;
  let close = () => {};
  let allowNonAtomicPointer = false;
  if (config.kind === "fs") {
    store = new FsBlobStore(config.root);
  } else if (config.kind === "s3") {
    const client = new S3Client(config.client ?? {});
    close = () => client.destroy();
    store = new S3BlobStore({ client, bucket: config.bucket, conditionalWrites: config.conditionalWrites });
    allowNonAtomicPointer = !config.conditionalWrites;
  } else {
    const container = BlobServiceClient.fromConnectionString(config.connectionString).getContainerClient(
      config.container,
    );
    store = new AzureBlobStore({ container });
  }
  const trusted = security
    ? {
        signer: manifestSigner(security.signingKeyPem),
        trust: { keys: [{ publicKey: security.trustedKeyPem }] },
        keyWrapper: symmetricKeyWrapper(Buffer.from(security.fleetKey, "base64")),
        encryptUploads: true,
      }
    : {};
  return {
    transport: new ArtifactTransport(store, { prefix: "slipstream-demo", allowNonAtomicPointer, ...trusted }),
    close,
  };
}
