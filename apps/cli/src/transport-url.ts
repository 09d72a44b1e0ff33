/**
 * Transport URLs: where artifacts live.
 *
 * - `file:///path` — a directory (shared filesystem);
 * - `s3://bucket/prefix?endpoint=…&region=…&forcePathStyle=1` — credentials from the
 *   standard AWS chain (environment, shared config/credentials files, SSO, instance role);
 * - `azure://container/prefix?account=…&endpoint=…` — `AZURE_STORAGE_CONNECTION_STRING`,
 *   `AZURE_STORAGE_KEY`, `AZURE_STORAGE_SAS_TOKEN`, else `DefaultAzureCredential`
 *   (see `azure-auth.ts`).
 */
import { stat } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { S3Client } from "@aws-sdk/client-s3";
import { ArtifactTransport, type ArtifactTransportOptions, type BlobStore } from "@slipstream/transport";
import { AzureBlobStore } from "@slipstream/transport-azure";
import { FsBlobStore } from "@slipstream/transport-fs";
import { S3BlobStore } from "@slipstream/transport-s3";
import { azureServiceClient, describeAzureAuth, selectAzureAuth } from "./azure-auth.js";
import { CliError, EXIT, usage } from "./exit.js";

/** A parsed transport URL with its store. */
export interface TransportTarget {
  /** The URL as given, without query secrets (for messages). */
  readonly display: string;
  readonly scheme: "file" | "s3" | "azure";
  readonly store: BlobStore;
  /** The prefix under which artifact keys live. */
  readonly prefix: string;
  /** Which credentials the store uses, without secrets (e.g. "DefaultAzureCredential (Microsoft Entra ID)"). */
  readonly credentials: string;
  /** An ArtifactTransport over the store and prefix. */
  /** An ArtifactTransport over the store and prefix (with trust/decryption settings in `extra`). */
  transport(timeoutMs: number, extra?: Pick<ArtifactTransportOptions, "trust" | "keyWrapper">): ArtifactTransport;
}

/** True when `text` looks like a URL (`scheme://…`) rather than a path. */
export function isUrl(text: string): boolean {
  return /^[a-z][a-z0-9+.-]*:\/\//i.test(text);
}

function cleanPrefix(path: string): string {
  return path
    .split("/")
    .filter((s) => s !== "")
    .join("/");
}

function flag(v: string | null): boolean | undefined {
  if (v === null) return undefined;
  return v === "" || v === "1" || v.toLowerCase() === "true";
}

/**
 * Parses `url` and builds its BlobStore. Makes no request; checks a `file://` root exists
 * (so a typo is not mistaken for "no artifacts").
 */
export async function openTransportUrl(
  text: string,
  env: Readonly<Record<string, string | undefined>>,
  opts: { timeoutMs: number },
): Promise<TransportTarget> {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw usage(
      `not a transport URL: ${JSON.stringify(text)} (expected file:///path, s3://bucket/prefix or azure://container/prefix)`,
    );
  }
  const make = (
    scheme: TransportTarget["scheme"],
    store: BlobStore,
    prefix: string,
    display: string,
    credentials: string,
  ) => ({
    display,
    scheme,
    store,
    prefix,
    credentials,
    transport: (timeoutMs: number, extra: Pick<ArtifactTransportOptions, "trust" | "keyWrapper"> = {}) =>
      new ArtifactTransport(store, { prefix, timeoutMs, ...extra }),
  });
  switch (url.protocol) {
    case "file:": {
      if (url.host !== "" && url.host !== "localhost")
        throw usage(`file URLs name a local path: file:///path, got ${text}`);
      const root = fileURLToPath(url);
      const st = await stat(root).catch(() => undefined);
      if (!st) throw new CliError(EXIT.INPUT, "NOT_FOUND", `transport directory ${root} does not exist`);
      if (!st.isDirectory()) throw new CliError(EXIT.INPUT, "NOT_FOUND", `transport path ${root} is not a directory`);
      return make("file", new FsBlobStore(root), "", `file://${root}`, "file permissions");
    }
    case "s3:": {
      const bucket = url.hostname;
      if (!bucket) throw usage(`s3 URL needs a bucket: s3://bucket/prefix, got ${text}`);
      const q = url.searchParams;
      const endpoint = q.get("endpoint") ?? undefined;
      const region = q.get("region") ?? env.AWS_REGION ?? env.AWS_DEFAULT_REGION ?? "us-east-1";
      const forcePathStyle = flag(q.get("forcePathStyle")) ?? false;
      for (const k of q.keys()) {
        if (!["endpoint", "region", "forcePathStyle"].includes(k)) throw usage(`unknown s3 URL parameter ${k}`);
      }
      // Credentials: AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY(/AWS_SESSION_TOKEN) of the given
      // environment when set, else the SDK's default provider chain (profile, SSO, IMDS…).
      const keyId = env.AWS_ACCESS_KEY_ID;
      const secret = env.AWS_SECRET_ACCESS_KEY;
      const client = new S3Client({
        region,
        forcePathStyle,
        maxAttempts: 2,
        ...(endpoint ? { endpoint } : {}),
        ...(keyId && secret
          ? {
              credentials: {
                accessKeyId: keyId,
                secretAccessKey: secret,
                ...(env.AWS_SESSION_TOKEN ? { sessionToken: env.AWS_SESSION_TOKEN } : {}),
              },
            }
          : {}),
      });
      const store = new S3BlobStore({ client, bucket, timeoutMs: opts.timeoutMs });
      return make(
        "s3",
        store,
        cleanPrefix(decodeURIComponent(url.pathname)),
        `s3://${bucket}${url.pathname}`,
        keyId && secret ? "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY" : "the AWS SDK's default credential chain",
      );
    }
    case "azure:": {
      const container = url.hostname;
      if (!container) throw usage(`azure URL needs a container: azure://container/prefix, got ${text}`);
      const q = url.searchParams;
      for (const k of q.keys()) {
        if (k !== "endpoint" && k !== "account") throw usage(`unknown azure URL parameter ${k}`);
      }
      const auth = selectAzureAuth(env, {
        account: q.get("account") ?? undefined,
        endpoint: q.get("endpoint") ?? undefined,
      });
      const service = await azureServiceClient(auth);
      const store = new AzureBlobStore({ container: service.getContainerClient(container), timeoutMs: opts.timeoutMs });
      return make(
        "azure",
        store,
        cleanPrefix(decodeURIComponent(url.pathname)),
        `azure://${container}${url.pathname}`,
        describeAzureAuth(auth),
      );
    }
    default:
      throw usage(`unsupported transport URL scheme ${url.protocol.replace(/:$/, "")}:// (use file, s3 or azure)`);
  }
}
