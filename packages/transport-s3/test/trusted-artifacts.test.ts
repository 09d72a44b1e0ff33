import { trustedArtifactSuite } from "@slipstream/transport";
import { describe, it } from "vitest";
import { freshStore, useS3rver } from "./helpers.js";

const s3 = useS3rver();

// s3rver does not enforce conditional writes, so pointers are published non-atomically here
// (what these tests check is signing, chunked ranged reads, resume and encryption).
trustedArtifactSuite({
  name: "S3BlobStore on s3rver",
  describe,
  it: (name, fn) => it(name, fn, 120_000),
  allowNonAtomicPointer: true,
  factory: async () => freshStore(s3.client(), s3.server.bucket),
});
