/**
 * How an `azure://container/prefix?account=NAME&endpoint=URL` URL authenticates, chosen
 * from the URL and the environment in a fixed order:
 *
 * 1. `AZURE_STORAGE_CONNECTION_STRING` — a connection string (Azurite, account keys);
 * 2. `AZURE_STORAGE_KEY` — the account's shared key (needs the account name);
 * 3. `AZURE_STORAGE_SAS_TOKEN` — a SAS token appended to the endpoint;
 * 4. otherwise `DefaultAzureCredential` of `@azure/identity` (Microsoft Entra ID: service
 *    principal or workload identity from `AZURE_CLIENT_ID`/`AZURE_TENANT_ID`/…, managed
 *    identity, Azure CLI/PowerShell/Developer CLI sign-in). It reads the process
 *    environment itself and only talks to Entra ID when the first request needs a token.
 *
 * The account comes from `?account=`, else `AZURE_STORAGE_ACCOUNT`; the endpoint from
 * `?endpoint=`, else `AZURE_STORAGE_BLOB_ENDPOINT`, else `https://<account>.blob.core.windows.net`.
 */
import { AnonymousCredential, BlobServiceClient, StorageSharedKeyCredential } from "@azure/storage-blob";
import { usage } from "./exit.js";

/** The credential an azure:// URL uses. Secrets stay in here; {@link describeAzureAuth} is safe to print. */
export type AzureAuth =
  | { readonly kind: "connection-string"; readonly connectionString: string }
  | { readonly kind: "shared-key"; readonly endpoint: string; readonly account: string; readonly key: string }
  | { readonly kind: "sas"; readonly endpoint: string; readonly sas: string }
  | { readonly kind: "default-azure-credential"; readonly endpoint: string };

/** Azure storage account names: 3–24 lowercase letters and digits. */
const ACCOUNT_RE = /^[a-z0-9]{3,24}$/;

function endpointOf(raw: string, from: string): string {
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    throw usage(`${from} is not a URL: ${JSON.stringify(raw)}`);
  }
  if (u.protocol !== "https:" && u.protocol !== "http:") throw usage(`${from} must be an http(s) URL, got ${raw}`);
  if (u.search !== "" || u.username !== "" || u.password !== "") {
    throw usage(
      `${from} must be a plain endpoint URL (no query or user info; put a SAS token in AZURE_STORAGE_SAS_TOKEN)`,
    );
  }
  return raw.replace(/\/+$/, "");
}

/**
 * Chooses the credential of an azure:// URL from its `account`/`endpoint` parameters and
 * `env`. Makes no request. Bad or contradictory input is a usage error (exit 2).
 */
export function selectAzureAuth(
  env: Readonly<Record<string, string | undefined>>,
  params: { readonly account?: string | undefined; readonly endpoint?: string | undefined },
): AzureAuth {
  if (params.account !== undefined && !ACCOUNT_RE.test(params.account)) {
    throw usage(
      `azure URL account ${JSON.stringify(params.account)} is not a storage account name (3–24 lowercase letters and digits)`,
    );
  }
  const conn = env.AZURE_STORAGE_CONNECTION_STRING;
  if (conn) {
    // The connection string names its own account: a URL naming another one is a mistake.
    const named = /(?:^|;)\s*AccountName=([^;]+)/i.exec(conn)?.[1]?.trim();
    if (params.account !== undefined && named !== undefined && named !== params.account) {
      throw usage(
        `the azure URL names account ${params.account}, but AZURE_STORAGE_CONNECTION_STRING is for account ${named}`,
      );
    }
    return { kind: "connection-string", connectionString: conn };
  }
  const account = params.account ?? (env.AZURE_STORAGE_ACCOUNT || undefined);
  if (account !== undefined && !ACCOUNT_RE.test(account)) {
    throw usage(`AZURE_STORAGE_ACCOUNT ${JSON.stringify(account)} is not a storage account name`);
  }
  const endpointRaw = params.endpoint ?? (env.AZURE_STORAGE_BLOB_ENDPOINT || undefined);
  const endpoint =
    endpointRaw !== undefined
      ? endpointOf(
          endpointRaw,
          params.endpoint !== undefined ? "the azure URL endpoint" : "AZURE_STORAGE_BLOB_ENDPOINT",
        )
      : account !== undefined
        ? `https://${account}.blob.core.windows.net`
        : undefined;
  if (endpoint === undefined) {
    throw usage(
      "no Azure credentials or account: set AZURE_STORAGE_CONNECTION_STRING, or name the storage account (azure://container/prefix?account=NAME or AZURE_STORAGE_ACCOUNT) or its endpoint (?endpoint=URL)",
    );
  }
  const key = env.AZURE_STORAGE_KEY;
  if (key) {
    if (account === undefined) {
      throw usage("AZURE_STORAGE_KEY is set, but no account names it: add ?account=NAME or set AZURE_STORAGE_ACCOUNT");
    }
    return { kind: "shared-key", endpoint, account, key };
  }
  const sas = env.AZURE_STORAGE_SAS_TOKEN;
  if (sas) return { kind: "sas", endpoint, sas: sas.replace(/^\?/, "") };
  // A bearer token must never travel in clear text; the SDK refuses it too, later and less clearly.
  if (!endpoint.startsWith("https://")) {
    throw usage(
      `Microsoft Entra ID (DefaultAzureCredential) needs an https endpoint, got ${endpoint}; for a local emulator set AZURE_STORAGE_CONNECTION_STRING or AZURE_STORAGE_KEY`,
    );
  }
  return { kind: "default-azure-credential", endpoint };
}

/** What {@link selectAzureAuth} chose, without secrets (for messages and `--json`). */
export function describeAzureAuth(auth: AzureAuth): string {
  switch (auth.kind) {
    case "connection-string":
      return "AZURE_STORAGE_CONNECTION_STRING";
    case "shared-key":
      return `account key of ${auth.account} (AZURE_STORAGE_KEY)`;
    case "sas":
      return "SAS token (AZURE_STORAGE_SAS_TOKEN)";
    case "default-azure-credential":
      return "DefaultAzureCredential (Microsoft Entra ID)";
  }
}

/**
 * The service client of `auth`. `@azure/identity` is loaded only for
 * `default-azure-credential`, so the other paths do not pay for it.
 */
export async function azureServiceClient(auth: AzureAuth): Promise<BlobServiceClient> {
  switch (auth.kind) {
    case "connection-string":
      try {
        return BlobServiceClient.fromConnectionString(auth.connectionString);
      } catch (err) {
        throw usage(`AZURE_STORAGE_CONNECTION_STRING is not a valid connection string: ${(err as Error).message}`);
      }
    case "shared-key":
      return new BlobServiceClient(auth.endpoint, new StorageSharedKeyCredential(auth.account, auth.key));
    case "sas":
      return new BlobServiceClient(`${auth.endpoint}?${auth.sas}`, new AnonymousCredential());
    case "default-azure-credential": {
      const { DefaultAzureCredential } = await import("@azure/identity");
      return new BlobServiceClient(auth.endpoint, new DefaultAzureCredential());
    }
  }
}
