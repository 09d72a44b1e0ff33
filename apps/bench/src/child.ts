/**
 * Entry point of a benchmark child process (see isolate.ts): receives one
 * {@link ChildRequest}, runs it and sends back its result or its error.
 */
import { BENCHMARKS } from "./benchmarks.js";
import type { ChildMessage, ChildRequest } from "./isolate.js";

function send(m: ChildMessage): Promise<void> {
  return new Promise((resolve) => {
    if (!process.send) return resolve();
    process.send(m, undefined, {}, () => resolve());
  });
}

process.once("message", (req: ChildRequest) => {
  const run = async (): Promise<void> => {
    const bench = BENCHMARKS.find((b) => b.id === req.id);
    try {
      if (!bench) throw new Error(`unknown benchmark ${req.id}`);
      const result = await bench.run({ ...req.options, log: (line) => void send({ type: "log", line }) });
      await send({ type: "result", result });
    } catch (err) {
      await send({ type: "error", error: err instanceof Error ? (err.stack ?? err.message) : String(err) });
    } finally {
      process.disconnect?.();
    }
  };
  void run();
});
