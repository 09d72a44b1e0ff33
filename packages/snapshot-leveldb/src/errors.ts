import { join } from "node:path";
import { SlipstreamError } from "@slipstream/core";

interface LevelErrorLike {
  code?: unknown;
  message?: unknown;
  cause?: unknown;
}

function levelCodes(err: unknown): { codes: string[]; messages: string[] } {
  const codes: string[] = [];
  const messages: string[] = [];
  let cur: unknown = err;
  for (let depth = 0; depth < 5 && typeof cur === "object" && cur !== null; depth++) {
    const e = cur as LevelErrorLike;
    if (typeof e.code === "string") codes.push(e.code);
    if (typeof e.message === "string") messages.push(e.message);
    cur = e.cause;
  }
  return { codes, messages };
}

/**
 * Maps an error from opening LevelDB at `dir` to a SlipstreamError:
 * - the LOCK held by another process (or another open store in this process) → `BACKEND`
 *   naming the LOCK file, so an operator sees at once why it failed (never a hang);
 * - no `CURRENT` file (files present but not a LevelDB database) → `SNAPSHOT_INVALID_FORMAT`;
 * - LevelDB corruption → `SNAPSHOT_CORRUPTED`; anything else → `BACKEND`.
 */
export function mapOpenError(err: unknown, dir: string): SlipstreamError {
  if (SlipstreamError.is(err)) return err;
  const { codes, messages } = levelCodes(err);
  const detail = messages.at(-1) ?? String(err);
  if (codes.includes("LEVEL_LOCKED")) {
    const holder = /already held by process/.test(detail) ? "another open store in this process" : "another process";
    return new SlipstreamError(
      "BACKEND",
      `fold directory ${dir} is locked: ${join(dir, "LOCK")} is held by ${holder}; close that store first (${detail})`,
      { cause: err },
    );
  }
  if (codes.includes("LEVEL_CORRUPTION")) {
    return new SlipstreamError("SNAPSHOT_CORRUPTED", `LevelDB fold at ${dir} is corrupted: ${detail}`, { cause: err });
  }
  if (/does not exist \(create_if_missing is false\)/.test(detail)) {
    return new SlipstreamError(
      "SNAPSHOT_INVALID_FORMAT",
      `${dir} holds files but is not a LevelDB database (no CURRENT file); refusing to create a fold over them`,
      { cause: err },
    );
  }
  return new SlipstreamError("BACKEND", `opening LevelDB fold at ${dir}: ${detail}`, { cause: err });
}

/** Maps an error of a LevelDB read or write to a SlipstreamError (`SNAPSHOT_CORRUPTED` or `BACKEND`). */
export function mapLevelError(err: unknown, what: string): SlipstreamError {
  if (SlipstreamError.is(err)) return err;
  const { codes, messages } = levelCodes(err);
  const detail = messages.at(-1) ?? String(err);
  if (codes.includes("LEVEL_CORRUPTION")) {
    return new SlipstreamError("SNAPSHOT_CORRUPTED", `${what}: LevelDB reports corruption: ${detail}`, { cause: err });
  }
  return new SlipstreamError("BACKEND", `${what}: ${detail}`, { cause: err });
}
