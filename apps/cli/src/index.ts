/**
 * `@slipstream/cli` — the `slipstream` operator command line. The bin is `slipstream`; this
 * module exports `run` for embedding it (and for tests).
 *
 * @packageDocumentation
 */

export type { ExitCode } from "./exit.js";
export { CliError, classify, EXIT } from "./exit.js";
export type { CliIo } from "./output.js";
export { run, VERSION } from "./program.js";
