/**
 * Small builders for tests of transports: a real artifact directory (made with core's
 * `exportArtifact`, backend "test") and hand-crafted tars (hostile ones included).
 */
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { type ExportManifest, exportArtifact, WatchCursor } from "@slipstream/core";
import * as tarStream from "tar-stream";

/** Options of {@link makeTestArtifact}. */
export interface TestArtifactOptions {
  /** The artifact's cursor revision (0 → none). */
  revision: bigint;
  /** Content of `data/fold.snap`. @defaultValue a few bytes naming the revision */
  payload?: Uint8Array;
  /** Extra files under `data/` (relative path → content), e.g. `{ "sub/x.bin": … }`. */
  extra?: Record<string, Uint8Array>;
  /** createdAt of the manifest. */
  now?: Date;
  /** The manifest's `exporter`. @defaultValue none */
  exporter?: string;
}

/** Writes a sealed artifact (backend "test", version "1") at `destDir` (absent or empty). */
export function makeTestArtifact(destDir: string, opts: TestArtifactOptions): Promise<ExportManifest> {
  const payload = opts.payload ?? new TextEncoder().encode(`fold at revision ${opts.revision}\n`);
  return exportArtifact(destDir, {
    backend: "test",
    backendVersion: "1",
    cursor: opts.revision === 0n ? WatchCursor.none() : WatchCursor.fromRevision(opts.revision),
    now: opts.now ? () => opts.now as Date : undefined,
    ...(opts.exporter !== undefined ? { exporter: opts.exporter } : {}),
    writePayload: async (dataDir) => {
      await writeFile(join(dataDir, "fold.snap"), payload);
      for (const [rel, bytes] of Object.entries(opts.extra ?? {})) {
        const path = join(dataDir, ...rel.split("/"));
        await mkdir(join(path, ".."), { recursive: true });
        await writeFile(path, bytes);
      }
    },
  });
}

/** One entry of {@link buildTar}: a raw tar-stream header and an optional body. */
export interface TarEntrySpec {
  header: Partial<tarStream.Header> & { name: string };
  body?: Uint8Array;
}

/** Builds a tar in memory from raw entries — any type, any name, any size claim. */
export async function buildTar(entries: readonly TarEntrySpec[]): Promise<Uint8Array> {
  const pack = tarStream.pack();
  const chunks: Buffer[] = [];
  const collecting = (async () => {
    for await (const chunk of pack) chunks.push(chunk as Buffer);
  })();
  for (const e of entries) {
    await new Promise<void>((resolve, reject) => {
      const cb = (err?: Error | null) => (err ? reject(err) : resolve());
      if (e.body !== undefined) pack.entry({ ...e.header }, Buffer.from(e.body), cb);
      else pack.entry({ ...e.header }, cb).end(undefined);
    });
  }
  pack.finalize();
  await collecting;
  return new Uint8Array(Buffer.concat(chunks));
}
