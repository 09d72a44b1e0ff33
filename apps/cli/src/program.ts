/**
 * The `slipstream` command line: commander wiring, shared options, and one exit-code and
 * error path for every command.
 */
import { createRequire } from "node:module";
import { Command, CommanderError, InvalidArgumentError, Option } from "commander";
import { artifactsCommand } from "./commands/artifacts.js";
import { diffCommand } from "./commands/diff.js";
import { getCommand } from "./commands/get.js";
import { inspectCommand } from "./commands/inspect.js";
import { lsCommand } from "./commands/ls.js";
import { pullCommand } from "./commands/pull.js";
import { statusCommand } from "./commands/status.js";
import { verifyCommand } from "./commands/verify.js";
import { classify, EXIT, type ExitCode } from "./exit.js";
import { natsOptions } from "./nats.js";
import { type CliIo, parseDuration, printJson } from "./output.js";
import { type TrustFlags, trustOptions } from "./trust.js";

/** The package version, shown by `--version` (read from package.json, so releases bump it). */
export const VERSION: string = (createRequire(import.meta.url)("../package.json") as { version: string }).version;

const EXIT_HELP = `
Exit codes:
  0    success (in sync, valid, found)
  1    the command ran and found a problem (differences, invalid artifact, expired cursor, no such key)
  2    bad usage (unknown option, malformed URL or argument)
  3    input not there or not what it must be (missing directory, not a fold, no such bucket or artifact, a --creds file missing or not a .creds file)
  4    a server or store could not be reached or failed (connection refused, credentials refused, timeout, I/O error)
  5    refused (destination not empty, fold locked by a running process)
  130  interrupted`;

function positiveInt(v: string): number {
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n <= 0) throw new InvalidArgumentError("expected a positive integer");
  return n;
}

function duration(v: string): number {
  const ms = parseDuration(v);
  if (ms === undefined) throw new InvalidArgumentError('expected a duration like "500ms", "30s", "15m", "2h" or "1d"');
  return ms;
}

const jsonOption = () => new Option("--json", "print one JSON document (for scripts)");
const timeoutOption = () =>
  new Option("--timeout <duration>", "bound of each network call").argParser(duration).default(30_000, "30s");

/**
 * Runs the CLI with `argv` (the arguments after the program name) and returns the exit code.
 * Never calls `process.exit`; the bin does.
 */
export async function run(argv: readonly string[], io: CliIo): Promise<number> {
  let code: ExitCode = EXIT.OK;
  let json = false;
  const program = new Command("slipstream");
  program
    .description(
      "Operate slipstream folds and artifacts: inspect a fold, read keys, verify and pull artifacts, diff a fold against its bucket, and see how long a cursor can still resume.",
    )
    .version(VERSION, "-V, --version")
    .showHelpAfterError("(run with --help for usage)")
    .addHelpText("after", EXIT_HELP)
    .exitOverride()
    .configureOutput({
      writeOut: (s) => io.stdout.write(s),
      writeErr: (s) => io.stderr.write(s),
    });
  program.hook("preAction", (_this, action) => {
    json = action.opts().json === true;
  });
  const wrap =
    <A extends unknown[]>(fn: (...args: A) => Promise<ExitCode>) =>
    async (...args: A): Promise<void> => {
      code = await fn(...args);
    };

  program
    .command("inspect")
    .description("a fold's backend, format, cursor, key count, size on disk and last commit time")
    .argument("<foldDir>", "the fold directory")
    .addOption(jsonOption())
    .action(wrap((dir: string, o: { json?: boolean }) => inspectCommand(io, dir, o)));

  program
    .command("get")
    .description("one key of a fold: revision and value")
    .argument("<foldDir>", "the fold directory")
    .argument("<key>", "the key")
    .addOption(jsonOption())
    .option("--raw", "write the value's bytes to stdout, nothing else")
    .action(wrap((dir: string, key: string, o: { json?: boolean; raw?: boolean }) => getCommand(io, dir, key, o)));

  program
    .command("ls")
    .description("keys of a fold in byte order: key, revision and value size, tab-separated")
    .argument("<foldDir>", "the fold directory")
    .argument("[prefix]", "only keys starting with this", "")
    .option("--limit <n>", "stop after n keys", positiveInt)
    .addOption(jsonOption())
    .action(
      wrap((dir: string, prefix: string, o: { json?: boolean; limit?: number }) => lsCommand(io, dir, prefix, o)),
    );

  trustOptions(program.command("verify"))
    .description(
      "check an artifact: every manifest field, path, size and sha256; a local directory, or a published one (downloaded to a temp dir)",
    )
    .argument("<target>", "an artifact directory, or a transport URL")
    .argument("[key]", "with a URL: the artifact key (default: the only one)")
    .option("--key <key>", "with a URL: the artifact key")
    .option("--deep", "also import into a scratch fold and check its cursor (then delete it)")
    .option("--no-progress", "no progress bar")
    .addOption(timeoutOption())
    .addOption(jsonOption())
    .action(
      wrap(
        (
          target: string,
          key: string | undefined,
          o: { json?: boolean; key?: string; deep?: boolean; progress?: boolean; timeout: number } & TrustFlags,
        ) => verifyCommand(io, target, key, { ...o, timeoutMs: o.timeout }),
      ),
    );

  trustOptions(program.command("artifacts"))
    .description(
      "published artifacts: the pointer (cursor, created, size, exporter, signature), payloads kept, and what prune would remove",
    )
    .argument("<transportUrl>", "file:///path, s3://bucket/prefix?…, azure://container/prefix?account=…")
    .option("--key <key>", "only this artifact key")
    .addOption(
      new Option("--grace <duration>", "the grace period prune would use").argParser(duration).default(3_600_000, "1h"),
    )
    .addOption(timeoutOption())
    .addOption(jsonOption())
    .action(
      wrap((url: string, o: { json?: boolean; key?: string; grace: number; timeout: number } & TrustFlags) =>
        artifactsCommand(io, url, { ...o, graceMs: o.grace, timeoutMs: o.timeout }),
      ),
    );

  trustOptions(program.command("pull"))
    .description("download a published artifact and import it, verified, as a new fold at destDir (absent or empty)")
    .argument("<transportUrl>", "file:///path, s3://bucket/prefix?…, azure://container/prefix")
    .argument("<destDir>", "where the fold is created; must be absent or empty")
    .option("--key <key>", "the artifact key (default: the only one)")
    .option(
      "--prefix <prefix>",
      "keep only keys under this prefix (repeatable): the fold of a node that watches only these prefixes; the artifact must cover them",
      (value: string, previous: string[] = []) => [...previous, value],
    )
    .option("--no-progress", "no progress bar")
    .addOption(timeoutOption())
    .addOption(jsonOption())
    .action(
      wrap(
        (
          url: string,
          dest: string,
          o: { json?: boolean; key?: string; prefix?: string[]; progress?: boolean; timeout: number } & TrustFlags,
        ) => pullCommand(io, url, dest, { ...o, timeoutMs: o.timeout }),
      ),
    );

  natsOptions(
    program
      .command("diff")
      .description(
        "keys missing from, extra in, and stale (other revision) in a fold, against the live bucket; exit 1 when they differ",
      )
      .argument("<foldDir>", "the fold directory"),
  )
    .option("--prefix <prefix>", "only keys starting with this")
    .option("--limit <n>", "list at most n keys per kind", positiveInt, 50)
    .addOption(timeoutOption())
    .addOption(jsonOption())
    .action(
      wrap((dir: string, o: Parameters<typeof diffCommand>[2] & { timeout: number }) =>
        diffCommand(io, dir, { ...o, timeoutMs: o.timeout }),
      ),
    );

  natsOptions(
    program
      .command("status")
      .description(
        "the bucket's sequences and limits, and for a fold and the newest artifact the retention horizon: how many messages (and how long) until the bucket evicts what that cursor needs",
      ),
  )
    .option("--fold <dir>", "a fold directory")
    .option("--transport <url>", "where artifacts are published")
    .option("--key <key>", "with --transport: the artifact key (default: the only one)")
    .addOption(timeoutOption())
    .addOption(jsonOption())
    .action(
      wrap((o: Parameters<typeof statusCommand>[1] & { timeout: number }) =>
        statusCommand(io, { ...o, timeoutMs: o.timeout }),
      ),
    );

  for (const cmd of program.commands) cmd.addHelpText("after", EXIT_HELP).exitOverride();

  try {
    await program.parseAsync(argv as string[], { from: "user" });
    return code;
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.code === "commander.helpDisplayed" || err.code === "commander.version" || err.code === "commander.help") {
        return EXIT.OK;
      }
      // Commander already printed the message.
      return EXIT.USAGE;
    }
    const c = classify(err);
    if (json) printJson(io, { error: { code: c.code, message: c.message, exitCode: c.exitCode } });
    io.stderr.write(`slipstream: ${c.message}\n`);
    return c.exitCode;
  }
}
