/**
 * The transport URLs against real object stores: s3:// on s3rver (credentials from the
 * environment, as the AWS chain reads them) and azure:// on Azurite (connection string or
 * account + key from the environment).
 */
import { mkdir, readdir } from "node:fs/promises";
import { join } from "node:path";
import { S3Client } from "@aws-sdk/client-s3";
import {
  AccountSASPermissions,
  AccountSASResourceTypes,
  AccountSASServices,
  BlobServiceClient,
  generateAccountSASQueryParameters,
  StorageSharedKeyCredential,
} from "@azure/storage-blob";
import { EXIT } from "@slipstream/cli";
import { LevelSnapshotStore } from "@slipstream/snapshot-leveldb";
import {
  type AzuriteHandle,
  freePort,
  type S3rverHandle,
  startAzurite,
  startS3rver,
  type TempDir,
  tempDir,
} from "@slipstream/testkit";
import { ArtifactTransport } from "@slipstream/transport";
import { AzureBlobStore } from "@slipstream/transport-azure";
import { S3BlobStore } from "@slipstream/transport-s3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cli, makeFold, routes } from "./helpers.js";

let tmp: TempDir;
let artifact: string;
beforeAll(async () => {
  tmp = await tempDir("slipstream-cli-stores-");
  const fold = join(tmp.path, "fold");
  await makeFold(fold, routes(120));
  artifact = join(tmp.path, "artifact");
  const store = await LevelSnapshotStore.open(fold);
  await store.exportTo(artifact);
  await store.close();
});
afterAll(async () => {
  await tmp.cleanup();
});

describe("s3:// (s3rver)", () => {
  let s3: S3rverHandle;
  let client: S3Client;
  let env: Record<string, string>;
  let url: string;
  beforeAll(async () => {
    s3 = await startS3rver();
    client = new S3Client(s3.client());
    // s3rver does not enforce conditional writes: publishing needs the explicit opt-in.
    const store = new S3BlobStore({ client, bucket: s3.bucket, conditionalWrites: false });
    await new ArtifactTransport(store, { prefix: "fleet/eu", allowNonAtomicPointer: true }).upload("edge", artifact);
    const creds = s3.client().credentials;
    env = { AWS_ACCESS_KEY_ID: creds.accessKeyId, AWS_SECRET_ACCESS_KEY: creds.secretAccessKey };
    url = `s3://${s3.bucket}/fleet/eu?endpoint=${encodeURIComponent(s3.endpoint)}&region=us-east-1&forcePathStyle=1`;
  });
  afterAll(async () => {
    client?.destroy();
    await s3?.close();
  });

  it("artifacts, verify and pull through an s3:// URL", async () => {
    const a = await cli(["artifacts", url, "--json"], { env });
    expect(a.code).toBe(EXIT.OK);
    const j = a.json<{ artifacts: { key: string; pointer: { cursor: { revision: string } } }[] }>();
    expect(j.artifacts.map((x) => [x.key, x.pointer.cursor.revision])).toEqual([["edge", "120"]]);
    const v = await cli(["verify", url, "edge", "--deep"], { env });
    expect(v.code).toBe(EXIT.OK);
    const dest = join(tmp.path, "from-s3");
    const p = await cli(["pull", url, dest], { env });
    expect(p.code).toBe(EXIT.OK);
    const i = (await cli(["inspect", dest, "--json"])).json<{ entries: number; cursor: { revision: string } }>();
    expect(i).toMatchObject({ entries: 120, cursor: { revision: "120" } });
  });

  it("wrong credentials and an unreachable endpoint: exit 4, nothing pulled", async () => {
    const bad = await cli(["artifacts", url], { env: { AWS_ACCESS_KEY_ID: "nobody", AWS_SECRET_ACCESS_KEY: "wrong" } });
    expect(bad.code).toBe(EXIT.UNAVAILABLE);
    const port = await freePort();
    const dead = `s3://${s3.bucket}/fleet/eu?endpoint=${encodeURIComponent(`http://127.0.0.1:${port}`)}&forcePathStyle=1`;
    const parent = join(tmp.path, "dead-parent");
    await mkdir(parent);
    const r = await cli(["pull", dead, join(parent, "fold"), "--timeout", "5s"], { env });
    expect(r.code).toBe(EXIT.UNAVAILABLE);
    expect(r.stderr).toMatch(/ECONNREFUSED|connect|refused/i);
    expect(await readdir(parent)).toEqual([]);
  });
});

describe("azure:// (Azurite)", () => {
  let azurite: AzuriteHandle;
  beforeAll(async () => {
    azurite = await startAzurite({ inMemory: true });
    const container = BlobServiceClient.fromConnectionString(azurite.connectionString).getContainerClient("artifacts");
    await container.create();
    await new ArtifactTransport(new AzureBlobStore({ container }), { prefix: "fleet" }).upload("edge/eu", artifact);
  });
  afterAll(async () => {
    await azurite?.close();
  });

  it("artifacts, verify and pull with a connection string", async () => {
    const env = { AZURE_STORAGE_CONNECTION_STRING: azurite.connectionString };
    const a = await cli(["artifacts", "azure://artifacts/fleet"], { env });
    expect(a.code).toBe(EXIT.OK);
    expect(a.stdout).toMatch(/artifact edge\/eu/);
    expect(a.stdout).toMatch(/cursor\s+120/);
    expect((await cli(["verify", "azure://artifacts/fleet", "--key", "edge/eu"], { env })).code).toBe(EXIT.OK);
    const dest = join(tmp.path, "from-azure");
    expect((await cli(["pull", "azure://artifacts/fleet", dest], { env })).code).toBe(EXIT.OK);
    expect((await cli(["get", dest, "route.0007", "--json"])).json()).toMatchObject({ revision: "7", value: "v7" });
  });

  it("account + key from the environment, with the endpoint in the URL", async () => {
    const env = { AZURE_STORAGE_ACCOUNT: azurite.accountName, AZURE_STORAGE_KEY: azurite.accountKey };
    const url = `azure://artifacts/fleet?endpoint=${encodeURIComponent(azurite.blobEndpoint)}`;
    const r = await cli(["artifacts", url, "--json"], { env });
    expect(r.code).toBe(EXIT.OK);
    expect(r.json<{ artifacts: unknown[] }>().artifacts).toHaveLength(1);
    const wrong = await cli(["artifacts", url], {
      env: { ...env, AZURE_STORAGE_KEY: Buffer.from("wrong").toString("base64") },
    });
    expect(wrong.code).toBe(EXIT.UNAVAILABLE);
  });

  it("a SAS token from the environment, and ?account= naming the key's account", async () => {
    const sas = generateAccountSASQueryParameters(
      {
        expiresOn: new Date(Date.now() + 3_600_000),
        permissions: AccountSASPermissions.parse("rl"),
        resourceTypes: AccountSASResourceTypes.parse("sco").toString(),
        services: AccountSASServices.parse("b").toString(),
      },
      new StorageSharedKeyCredential(azurite.accountName, azurite.accountKey),
    ).toString();
    const url = `azure://artifacts/fleet?endpoint=${encodeURIComponent(azurite.blobEndpoint)}`;
    const r = await cli(["verify", url, "--key", "edge/eu", "--json"], { env: { AZURE_STORAGE_SAS_TOKEN: sas } });
    expect(r.code).toBe(EXIT.OK);
    expect(r.json()).toMatchObject({ ok: true, manifest: { cursor: { revision: "120" } } });
    // A SAS signed with another key is refused by the server: exit 4.
    const forged = sas.replace(/sig=[^&]+/, `sig=${encodeURIComponent(Buffer.alloc(32, 1).toString("base64"))}`);
    expect((await cli(["artifacts", url], { env: { AZURE_STORAGE_SAS_TOKEN: forged } })).code).toBe(EXIT.UNAVAILABLE);

    const withAccount = `${url}&account=${azurite.accountName}`;
    const k = await cli(["artifacts", withAccount, "--json"], { env: { AZURE_STORAGE_KEY: azurite.accountKey } });
    expect(k.code).toBe(EXIT.OK);
    expect(k.json<{ artifacts: { key: string }[] }>().artifacts.map((a) => a.key)).toEqual(["edge/eu"]);
  });

  it("a container that does not exist: no artifacts, exit 3 for pull", async () => {
    const env = { AZURE_STORAGE_CONNECTION_STRING: azurite.connectionString };
    const dest = join(tmp.path, "never");
    const r = await cli(["pull", "azure://missing-container/x", dest], { env });
    expect(r.code).toBe(EXIT.UNAVAILABLE);
    expect(r.stderr).toMatch(/ContainerNotFound|does not exist|404/);
    expect(await readdir(tmp.path)).not.toContain("never");
  });
});
