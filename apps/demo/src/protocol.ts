/**
 * The messages between the demo's conductor (index.ts) and its node processes (node.ts),
 * sent over the fork IPC channel. Revisions travel as decimal strings (bigint is not
 * JSON-serialisable).
 */
import type { Progress } from "@slipstream/core";
import type { DemoSecurity, TransportConfig } from "./transports.js";

/** How a node process gets its fold. */
export type NodeStart =
  /** Open (or create) the LevelDB fold in `dir` and resume from its own cursor. */
  | { kind: "open" }
  /** Download the published artifact, import it into `dir`, resume from its cursor. */
  | { kind: "bootstrap" };

/** The first (and only) configuration message a node receives. */
export interface NodeConfig {
  name: string;
  natsUrl: string;
  bucket: string;
  leaseBucket: string;
  leaseKey: string;
  leaseTtlMs: number;
  artifactKey: string;
  dir: string;
  scratchDir: string;
  start: NodeStart;
  transport: TransportConfig;
  /** Signing, trust and encryption of the fleet's artifacts. */
  security: DemoSecurity;
}

/** Conductor → node. */
export type Command =
  | { cmd: "config"; config: NodeConfig }
  /** Reply `reached` once the applied cursor is at or past `revision`. */
  | { cmd: "reach"; revision: string }
  /** Race for the lease and run one export round. */
  | { cmd: "export" }
  /** Reply `digest` with the fold's key count and content digest. */
  | { cmd: "digest" }
  /** Stop the watch, close the store, reply `stopped` and exit. */
  | { cmd: "stop" };

/** Counters a node reports with its digest. */
export interface NodeStats {
  received: number;
  resyncs: number;
  syntheticDeletes: number;
}

/** Node → conductor. */
export type NodeMessage =
  /** Sent first, once the process has loaded its modules: the clock of "time to ready" starts here. */
  | { type: "hello" }
  | { type: "started"; cursor: string; keys: number; bootstrapMs?: number }
  | { type: "live"; cursor: string; head: string; applied: number; ratePerSec: number }
  | { type: "transfer"; progress: Progress }
  | { type: "reached"; revision: string; cursor: string; received: number }
  | {
      type: "exported";
      outcome: "published" | "superseded" | "skipped";
      cursor?: string;
      files?: number;
      bytes?: number;
    }
  | { type: "digest"; cursor: string; keys: number; digest: string; stats: NodeStats }
  | { type: "stopped"; cursor: string }
  | { type: "failed"; error: string };
