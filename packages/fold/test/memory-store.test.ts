import { describe, it } from "vitest";
import { memoryStoreFactory, snapshotStoreSuite } from "@slipstream/fold";

const memory = memoryStoreFactory();
snapshotStoreSuite({ name: "memory", describe, it, open: memory.open, import: memory.import });
