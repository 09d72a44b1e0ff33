#!/usr/bin/env node
import { run } from "./program.js";

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
