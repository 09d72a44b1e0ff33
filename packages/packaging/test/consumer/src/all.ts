// Every published package imports by its bare name from the packed tarballs, types included.
import * as cli from "@slipstream/cli";
import * as core from "@slipstream/core";
import * as fold from "@slipstream/fold";
import * as lease from "@slipstream/lease";
import * as nats from "@slipstream/nats";
import * as leveldb from "@slipstream/snapshot-leveldb";
import * as transport from "@slipstream/transport";
import * as azure from "@slipstream/transport-azure";
import * as fs from "@slipstream/transport-fs";
import * as s3 from "@slipstream/transport-s3";

const err: core.SlipstreamError = new core.SlipstreamError("INVALID_ARGUMENT", "consumer check");
const surface = {
  "@slipstream/cli": cli,
  "@slipstream/core": core,
  "@slipstream/fold": fold,
  "@slipstream/lease": lease,
  "@slipstream/nats": nats,
  "@slipstream/snapshot-leveldb": leveldb,
  "@slipstream/transport": transport,
  "@slipstream/transport-azure": azure,
  "@slipstream/transport-fs": fs,
  "@slipstream/transport-s3": s3,
};
console.log(
  JSON.stringify({
    exports: Object.fromEntries(Object.entries(surface).map(([k, v]) => [k, Object.keys(v).length])),
    is: core.SlipstreamError.is(err, "INVALID_ARGUMENT"),
    classes: [
      typeof fold.watchApplied,
      typeof leveldb.LevelSnapshotStore,
      typeof fs.FsBlobStore,
      typeof s3.S3BlobStore,
      typeof azure.AzureBlobStore,
      typeof lease.ExportLease,
      typeof transport.ArtifactTransport,
      typeof cli.run,
    ],
  }),
);
