import { blobStoreConformance } from "@slipstream/transport";
import { describe, it } from "vitest";
import { freshStore, MiB, useS3rver } from "./helpers.js";

const s3 = useS3rver();

// s3rver does not enforce If-None-Match / If-Match (see s3-blob-store.test.ts), so the suite
// runs the store with conditionalWrites: false and checks the non-atomic path.
//
// Big object: 160 MiB with a 128 MiB bound, at the default part size (8 MiB) and queue (4).
// Measured with forced GCs, one put holds ~60 MiB live (lib-storage keeps ~1.5 parts per
// slot); the rest of the bound is GC lag. The object is larger than the bound, so a store
// that buffered it whole would fail. The suite's 200 MiB default only adds seconds of s3rver
// disk I/O (it concatenates parts on completion) for no extra coverage.
blobStoreConformance({
  name: "S3BlobStore on s3rver (conditionalWrites: false)",
  describe,
  it: (name, fn) => it(name, fn, 120_000),
  bigObjectBytes: 160 * MiB,
  memoryBoundBytes: 128 * MiB,
  factory: async () => freshStore(s3.client(), s3.server.bucket),
});
