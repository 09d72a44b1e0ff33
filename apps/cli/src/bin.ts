#!/usr/bin/env node
import { run } from "./program.js";

// The AWS SDK warns on every run under Node 20 about its own future releases; an operator
// tool's stderr is for the operator. Set the variable to "false" to see the warning again.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= "true";

const ctl = new AbortController();
let interrupted = 0;
process.on("SIGINT", () => {
  interrupted++;
  // A second Ctrl-C does not wait for clean-up.
  if (interrupted > 1) process.exit(130);
  ctl.abort();
});

const code = await run(process.argv.slice(2), {
  stdout: process.stdout,
  stderr: process.stderr,
  env: process.env,
  isTTY: process.stderr.isTTY === true,
  signal: ctl.signal,
});
process.exitCode = code;
