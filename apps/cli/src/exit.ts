/**
 * Exit codes (stable: scripts match on them) and the mapping of failures onto them.
 */
import { isArtifactRefusal, SlipstreamError } from "@slipstream/core";

/** The exit codes of every `slipstream` command. */
export const EXIT = {
  /** Success: the fold/artifact/bucket is as expected. */
  OK: 0,
  /**
   * The command ran and found a problem: `diff` found differences, `verify` found a defect,
   * `pull` refused an invalid, untrusted, undecryptable or corrupt artifact, `status` found a cursor that can no longer resume,
   * `get` found no such key.
   */
  PROBLEM: 1,
  /** Bad usage: unknown command or option, malformed URL or argument. */
  USAGE: 2,
  /** The input is not there or not what it must be: missing directory, not a fold, corrupt fold, no such bucket or artifact, a `--creds` file missing or not a `.creds` file. */
  INPUT: 3,
  /** A server or store could not be reached or failed: connection refused, credentials refused, timeout, I/O error. */
  UNAVAILABLE: 4,
  /** Refused to touch something: the destination is not empty, the fold is locked by a running process. */
  REFUSED: 5,
  /** Interrupted (Ctrl-C / SIGINT). */
  INTERRUPTED: 130,
} as const;

/** One of {@link EXIT}. */
export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

/** A failure the CLI reports with a chosen exit code. */
export class CliError extends Error {
  readonly exitCode: ExitCode;
  /** A stable code for `--json` output (a SlipstreamError code or a CLI one). */
  readonly code: string;
  constructor(exitCode: ExitCode, code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "CliError";
    this.exitCode = exitCode;
    this.code = code;
  }
}

/** Shorthand for a usage error. */
export function usage(message: string): CliError {
  return new CliError(EXIT.USAGE, "USAGE", message);
}

/** The exit code and stable code of any failure. */
export function classify(err: unknown): { exitCode: ExitCode; code: string; message: string } {
  if (err instanceof CliError) return { exitCode: err.exitCode, code: err.code, message: err.message };
  const message = err instanceof Error ? err.message : String(err);
  if (SlipstreamError.is(err)) {
    const code = err.code;
    // A refusal of the artifact itself, or one that does not cover the asked-for scope.
    if (isArtifactRefusal(err) || code === "SCOPE_NOT_COVERED") return { exitCode: EXIT.PROBLEM, code, message };
    switch (code) {
      case "SNAPSHOT_CORRUPTED":
      case "SNAPSHOT_INVALID_FORMAT":
        return { exitCode: EXIT.INPUT, code, message };
      case "INVALID_ARGUMENT":
        return { exitCode: EXIT.USAGE, code, message };
      case "ABORTED":
        return { exitCode: EXIT.INTERRUPTED, code, message };
      default:
        return { exitCode: EXIT.UNAVAILABLE, code, message };
    }
  }
  return { exitCode: EXIT.UNAVAILABLE, code: "INTERNAL", message };
}
