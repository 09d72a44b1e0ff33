import { snapshotStoreSuite } from "@slipstream/fold";
import { describe, it } from "vitest";
import { LevelSnapshotStore } from "../src/index.js";

snapshotStoreSuite({
  name: "leveldb",
  describe,
  it,
  open: (dir) => LevelSnapshotStore.open(dir),
  import: (artifactDir, destDir, opts) => LevelSnapshotStore.import(artifactDir, destDir, opts),
  capabilities: { scopedArtifacts: true },
});
