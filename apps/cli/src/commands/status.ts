import type { RetentionHorizon, WatchCursor } from "@slipstream/core";
import type { BucketStatus, NatsKvStore } from "@slipstream/nats";
import { CliError, EXIT, type ExitCode } from "../exit.js";
import { openExistingFold } from "../fold.js";
import { type NatsFlags, openBucket } from "../nats.js";
import { type CliIo, formatBytes, formatDuration, printFields, printJson, println } from "../output.js";
import { pickArtifact } from "../remote.js";
import { openTransportUrl } from "../transport-url.js";

function horizonJson(h: RetentionHorizon) {
  return {
    state: h.state,
    revision: h.revision ?? null,
    behind: h.behind,
    slackMessages: h.slackMessages,
    messagesRemaining: h.messagesRemaining ?? null,
    bytesRemaining: h.bytesRemaining ?? null,
    timeRemainingMs: h.timeRemainingMs ?? null,
    expiresAt: h.expiresAt?.toISOString() ?? null,
    timeIsLowerBound: h.timeIsLowerBound,
    limitedBy: h.limitedBy,
  };
}

/** One line on a horizon, for humans. */
export function describeHorizon(h: RetentionHorizon): string {
  switch (h.state) {
    case "none":
      return "no cursor: a fresh start re-lists the bucket and needs no history";
    case "ahead":
      return `AHEAD of the bucket (cursor ${h.revision}): the bucket was recreated or purged; revisions up to the cursor would be skipped — rebuild the fold`;
    case "expired":
      return `EXPIRED: the bucket no longer holds revision ${(h.revision ?? 0n) + 1n}; a resume fails with CURSOR_EXPIRED and the fold resyncs (a full re-list)`;
    default: {
      const parts: string[] = [];
      if (h.messagesRemaining !== undefined) {
        parts.push(
          `${h.messagesRemaining} more messages${h.bytesRemaining !== undefined ? ` (≈${formatBytes(h.bytesRemaining)})` : ""}`,
        );
      }
      if (h.timeRemainingMs !== undefined) {
        parts.push(
          `${h.timeIsLowerBound ? "at least " : ""}${formatDuration(h.timeRemainingMs)} (until ${h.expiresAt?.toISOString()})`,
        );
      }
      const until =
        parts.length > 0
          ? `; can resume for ${parts.join(" or ")} before eviction`
          : h.limitedBy.includes("max_age")
            ? "; age limit starts at the next publish"
            : "; no limit evicts what it needs (only rewrites and deletes do)";
      return `ok, ${h.behind} behind${until}${h.limitedBy.length ? ` [${h.limitedBy.join(", ")}]` : ""}`;
    }
  }
}

function limitsText(s: BucketStatus): string {
  const parts = [
    `max_bytes ${s.maxBytes > 0 ? formatBytes(s.maxBytes) : "none"}`,
    `max_msgs ${s.maxMsgs > 0 ? s.maxMsgs : "none"}`,
    `max_age ${s.maxAgeMs > 0 ? formatDuration(s.maxAgeMs) : "none"}`,
    `discard ${s.discard}`,
    `history ${s.history}`,
    `replicas ${s.replicas}`,
  ];
  return parts.join(", ");
}

async function horizonOf(bucket: NatsKvStore, status: BucketStatus, cursor: WatchCursor, signal?: AbortSignal) {
  return bucket.horizon(cursor, { status, ...(signal ? { signal } : {}) });
}

/** `status --nats URL --bucket NAME [--fold dir] [--transport url]`: the bucket, and the horizon of each cursor. */
export async function statusCommand(
  io: CliIo,
  opts: NatsFlags & { json?: boolean; fold?: string; transport?: string; key?: string; timeoutMs: number },
): Promise<ExitCode> {
  // Local and remote inputs are checked before connecting: a typo fails fast.
  let foldCursor: WatchCursor | undefined;
  let foldDir: string | undefined;
  if (opts.fold !== undefined) {
    const store = await openExistingFold(opts.fold);
    foldCursor = store.cursor;
    foldDir = store.directory;
    await store.close();
  }
  let artifact: { source: string; key: string; cursor: WatchCursor; createdAt: Date } | undefined;
  if (opts.transport !== undefined) {
    const t = await openTransportUrl(opts.transport, io.env, { timeoutMs: opts.timeoutMs });
    const entry = await pickArtifact(t, opts.key, {
      timeoutMs: opts.timeoutMs,
      ...(io.signal ? { signal: io.signal } : {}),
    });
    const m = entry.pointer?.manifest;
    if (!m) {
      // A pointer nobody can read bootstraps nobody: that is the answer, not a missing line.
      throw new CliError(
        EXIT.PROBLEM,
        "ARTIFACT_INVALID",
        `the pointer of artifact ${entry.key} at ${t.display} is unreadable: ${entry.pointer?.problem ?? "unknown"}`,
      );
    }
    artifact = { source: t.display, key: entry.key, cursor: m.cursor, createdAt: m.createdAt };
  }
  const { conn, bucket } = await openBucket(opts, io.env, opts.timeoutMs, io.signal);
  try {
    const status = await bucket.status(io.signal ? { signal: io.signal } : {});
    const fold = foldCursor ? await horizonOf(bucket, status, foldCursor, io.signal) : undefined;
    const art = artifact ? await horizonOf(bucket, status, artifact.cursor, io.signal) : undefined;
    const bad = [fold, art].some((h) => h && (h.state === "expired" || h.state === "ahead"));
    if (opts.json) {
      printJson(io, {
        bucket: {
          name: status.name,
          stream: status.stream,
          firstSeq: status.firstSeq,
          lastSeq: status.lastSeq,
          messages: status.messages,
          bytes: status.bytes,
          firstTime: status.firstTime?.toISOString() ?? null,
          lastTime: status.lastTime?.toISOString() ?? null,
          limits: {
            maxBytes: status.maxBytes,
            maxMsgs: status.maxMsgs,
            maxAgeMs: status.maxAgeMs,
            discard: status.discard,
            history: status.history,
            replicas: status.replicas,
            storage: status.storage,
          },
        },
        fold: fold && foldDir ? { directory: foldDir, horizon: horizonJson(fold) } : null,
        artifact:
          art && artifact
            ? {
                source: artifact.source,
                key: artifact.key,
                createdAt: artifact.createdAt.toISOString(),
                horizon: horizonJson(art),
              }
            : null,
      });
    } else {
      printFields(io, [
        ["bucket", `${status.name} (stream ${status.stream})`],
        [
          "sequences",
          `first ${status.firstSeq}, last ${status.lastSeq} (${status.messages} messages, ${formatBytes(status.bytes)})`,
        ],
        ["limits", limitsText(status)],
        ...(fold && foldDir
          ? ([["fold", `${foldDir} at ${fold.revision ?? "none"}: ${describeHorizon(fold)}`]] as const)
          : []),
        ...(art && artifact
          ? ([
              [
                "artifact",
                `${artifact.source} key ${artifact.key} at ${art.revision ?? "none"}: ${describeHorizon(art)}`,
              ],
            ] as const)
          : []),
      ]);
      if (!fold && !art) println(io, "(pass --fold DIR and/or --transport URL for their retention horizon)");
    }
    return bad ? EXIT.PROBLEM : EXIT.OK;
  } finally {
    await conn.close();
  }
}
