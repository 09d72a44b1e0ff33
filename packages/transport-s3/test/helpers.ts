import { randomBytes } from "node:crypto";
import { S3Client } from "@aws-sdk/client-s3";
import { type S3rverHandle, startS3rver } from "@slipstream/testkit";
import { afterAll, beforeAll } from "vitest";
import { S3BlobStore, type S3BlobStoreOptions } from "../src/index.js";

/** One s3rver per test file (started in beforeAll, closed in afterAll). */
export function useS3rver(): { readonly server: S3rverHandle; client(endpoint?: string): S3Client } {
  let server: S3rverHandle | undefined;
  const clients: S3Client[] = [];
  beforeAll(async () => {
    server = await startS3rver();
  });
  afterAll(async () => {
    for (const c of clients) c.destroy();
    await server?.close();
  });
  return {
    get server() {
      if (!server) throw new Error("s3rver is not started yet");
      return server;
    },
    /** A client of the server (or of `endpoint`, e.g. a fault proxy in front of it). */
    client(endpoint?: string) {
      if (!server) throw new Error("s3rver is not started yet");
      const c = new S3Client({ ...server.client(), ...(endpoint ? { endpoint } : {}) });
      clients.push(c);
      return c;
    },
  };
}

/** A store on its own fresh prefix: empty, whatever other tests wrote to the bucket. */
export function freshStore(client: S3Client, bucket: string, opts: Partial<S3BlobStoreOptions> = {}): S3BlobStore {
  return new S3BlobStore({
    client,
    bucket,
    prefix: `t-${randomBytes(6).toString("hex")}`,
    conditionalWrites: false,
    ...opts,
  });
}

export async function* chunks(...parts: (string | Uint8Array)[]): AsyncGenerator<Uint8Array> {
  for (const p of parts) yield typeof p === "string" ? new TextEncoder().encode(p) : p;
}

export async function readAll(body: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const out: Buffer[] = [];
  for await (const c of body) out.push(Buffer.from(c));
  return Buffer.concat(out);
}

export const MiB = 1024 * 1024;
