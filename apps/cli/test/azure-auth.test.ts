/**
 * Which credential an azure:// URL uses. No Microsoft Entra ID server exists here, so the
 * DefaultAzureCredential path is checked at the selection level (and that a real
 * `DefaultAzureCredential` is built, without asking it for a token); the connection string,
 * account key and SAS paths run end to end against Azurite in object-stores.test.ts.
 */
import { DefaultAzureCredential } from "@azure/identity";
import { AnonymousCredential } from "@azure/storage-blob";
import { EXIT } from "@slipstream/cli";
import { describe, expect, it } from "vitest";
import { azureServiceClient, describeAzureAuth, selectAzureAuth } from "../src/azure-auth.js";
import { CliError } from "../src/exit.js";
import { openTransportUrl } from "../src/transport-url.js";
import { cli } from "./helpers.js";

const CONN = "DefaultEndpointsProtocol=https;AccountName=fleetstore;AccountKey=a2V5;EndpointSuffix=core.windows.net";

function usageError(fn: () => unknown, text: RegExp): void {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  expect(caught).toBeInstanceOf(CliError);
  expect((caught as CliError).exitCode).toBe(EXIT.USAGE);
  expect((caught as Error).message).toMatch(text);
}

describe("selectAzureAuth", () => {
  it("a connection string wins over a key, a SAS token and the Entra ID chain", () => {
    const env = {
      AZURE_STORAGE_CONNECTION_STRING: CONN,
      AZURE_STORAGE_ACCOUNT: "fleetstore",
      AZURE_STORAGE_KEY: "a2V5",
      AZURE_STORAGE_SAS_TOKEN: "sv=x&sig=y",
    };
    expect(selectAzureAuth(env, {})).toEqual({ kind: "connection-string", connectionString: CONN });
    expect(selectAzureAuth(env, { account: "fleetstore" }).kind).toBe("connection-string");
    usageError(
      () => selectAzureAuth(env, { account: "otherstore" }),
      /names account otherstore, but .* is for account fleetstore/,
    );
  });

  it("an account key: account from the URL or AZURE_STORAGE_ACCOUNT; endpoint from the URL, the env, or the account", () => {
    expect(selectAzureAuth({ AZURE_STORAGE_KEY: "a2V5" }, { account: "fleetstore" })).toEqual({
      kind: "shared-key",
      account: "fleetstore",
      key: "a2V5",
      endpoint: "https://fleetstore.blob.core.windows.net",
    });
    const env = { AZURE_STORAGE_ACCOUNT: "envstore", AZURE_STORAGE_KEY: "a2V5" };
    expect(selectAzureAuth(env, {})).toMatchObject({ kind: "shared-key", account: "envstore" });
    expect(selectAzureAuth(env, { account: "urlstore" })).toMatchObject({ account: "urlstore" });
    expect(
      selectAzureAuth({ ...env, AZURE_STORAGE_BLOB_ENDPOINT: "http://127.0.0.1:10000/envstore/" }, {}),
    ).toMatchObject({
      endpoint: "http://127.0.0.1:10000/envstore",
    });
    expect(selectAzureAuth(env, { endpoint: "https://blob.example.test" })).toMatchObject({
      endpoint: "https://blob.example.test",
    });
    usageError(
      () => selectAzureAuth({ AZURE_STORAGE_KEY: "a2V5" }, { endpoint: "https://x.test" }),
      /no account names it/,
    );
  });

  it("a SAS token needs only an endpoint; a leading ? is dropped", () => {
    expect(selectAzureAuth({ AZURE_STORAGE_SAS_TOKEN: "?sv=x&sig=y" }, { endpoint: "https://x.test" })).toEqual({
      kind: "sas",
      endpoint: "https://x.test",
      sas: "sv=x&sig=y",
    });
    expect(selectAzureAuth({ AZURE_STORAGE_SAS_TOKEN: "sv=x" }, { account: "fleetstore" })).toMatchObject({
      kind: "sas",
      endpoint: "https://fleetstore.blob.core.windows.net",
    });
  });

  it("no connection string, key or SAS: DefaultAzureCredential for the account's or the given https endpoint", () => {
    expect(selectAzureAuth({}, { account: "fleetstore" })).toEqual({
      kind: "default-azure-credential",
      endpoint: "https://fleetstore.blob.core.windows.net",
    });
    expect(selectAzureAuth({ AZURE_STORAGE_ACCOUNT: "envstore" }, {})).toMatchObject({
      kind: "default-azure-credential",
      endpoint: "https://envstore.blob.core.windows.net",
    });
    expect(selectAzureAuth({}, { endpoint: "https://fleet.blob.core.usgovcloudapi.net" })).toMatchObject({
      kind: "default-azure-credential",
    });
    // Entra ID variables are the identity library's business, not a selection input.
    expect(selectAzureAuth({ AZURE_CLIENT_ID: "x", AZURE_TENANT_ID: "y" }, { account: "fleetstore" }).kind).toBe(
      "default-azure-credential",
    );
  });

  it("refuses what cannot work: no account or endpoint, a bearer token over http, bad names and endpoints", () => {
    usageError(() => selectAzureAuth({}, {}), /no Azure credentials or account/);
    usageError(
      () => selectAzureAuth({}, { endpoint: "http://127.0.0.1:10000/devstoreaccount1" }),
      /needs an https endpoint/,
    );
    usageError(() => selectAzureAuth({}, { account: "Bad.Name" }), /not a storage account name/);
    usageError(() => selectAzureAuth({ AZURE_STORAGE_ACCOUNT: "x" }, {}), /AZURE_STORAGE_ACCOUNT "x" is not/);
    usageError(() => selectAzureAuth({}, { endpoint: "ftp://x" }), /http\(s\) URL/);
    usageError(() => selectAzureAuth({}, { endpoint: "https://x.test/?sv=1&sig=2" }), /plain endpoint URL/);
    usageError(() => selectAzureAuth({}, { endpoint: "not a url" }), /not a URL/);
  });

  it("describes the choice without its secret", () => {
    const all = [
      selectAzureAuth({ AZURE_STORAGE_CONNECTION_STRING: CONN }, {}),
      selectAzureAuth({ AZURE_STORAGE_KEY: "c2VjcmV0LWtleQ==" }, { account: "fleetstore" }),
      selectAzureAuth({ AZURE_STORAGE_SAS_TOKEN: "sig=s3cret" }, { account: "fleetstore" }),
      selectAzureAuth({}, { account: "fleetstore" }),
    ].map(describeAzureAuth);
    expect(all).toEqual([
      "AZURE_STORAGE_CONNECTION_STRING",
      "account key of fleetstore (AZURE_STORAGE_KEY)",
      "SAS token (AZURE_STORAGE_SAS_TOKEN)",
      "DefaultAzureCredential (Microsoft Entra ID)",
    ]);
    expect(all.join(" ")).not.toMatch(/c2VjcmV0|s3cret|a2V5/);
  });
});

describe("azure:// URLs build the chosen client (no request is made)", () => {
  it("DefaultAzureCredential: a real credential from @azure/identity on the account's endpoint", async () => {
    const service = await azureServiceClient(selectAzureAuth({}, { account: "fleetstore" }));
    expect(service.credential).toBeInstanceOf(DefaultAzureCredential);
    expect(service.url).toBe("https://fleetstore.blob.core.windows.net/");
    const t = await openTransportUrl("azure://artifacts/fleet/eu?account=fleetstore", {}, { timeoutMs: 1000 });
    expect(t.credentials).toBe("DefaultAzureCredential (Microsoft Entra ID)");
    expect(t.prefix).toBe("fleet/eu");
    expect(t.display).toBe("azure://artifacts/fleet/eu");
  });

  it("the other kinds keep their clients; the URL's parameters are checked", async () => {
    const key = await openTransportUrl(
      "azure://artifacts/fleet?account=fleetstore",
      { AZURE_STORAGE_KEY: "a2V5" },
      { timeoutMs: 1000 },
    );
    expect(key.credentials).toBe("account key of fleetstore (AZURE_STORAGE_KEY)");
    const sas = await azureServiceClient(
      selectAzureAuth({ AZURE_STORAGE_SAS_TOKEN: "sv=x&sig=y" }, { account: "fleetstore" }),
    );
    expect(sas.credential).toBeInstanceOf(AnonymousCredential);
    expect(sas.url).toBe("https://fleetstore.blob.core.windows.net/?sv=x&sig=y");
    const conn = await openTransportUrl(
      "azure://artifacts/fleet",
      { AZURE_STORAGE_CONNECTION_STRING: CONN },
      { timeoutMs: 1000 },
    );
    expect(conn.credentials).toBe("AZURE_STORAGE_CONNECTION_STRING");
    const bad = await cli(["artifacts", "azure://artifacts/fleet?acount=fleetstore"]);
    expect(bad.code).toBe(EXIT.USAGE);
    expect(bad.stderr).toMatch(/unknown azure URL parameter acount/);
    const http = await cli([
      "artifacts",
      "azure://artifacts/fleet?endpoint=http%3A%2F%2F127.0.0.1%3A10000%2Fdevstoreaccount1",
    ]);
    expect(http.code).toBe(EXIT.USAGE);
    expect(http.stderr).toMatch(/DefaultAzureCredential\) needs an https endpoint/);
  });
});
