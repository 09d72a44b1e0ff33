import { memoryStoreFactory, snapshotStoreSuite } from "@slipstream/fold";
import { describe, it } from "vitest";

const memory = memoryStoreFactory();
snapshotStoreSuite({ name: "memory", describe, it, open: memory.open, import: memory.import });
