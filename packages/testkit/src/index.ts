/**
 * `@slipstream/testkit` — private helpers for slipstream's tests: real servers on free
 * loopback ports with temporary state, plus small async utilities. Not published.
 *
 * @packageDocumentation
 */

export {
  findNatsServer,
  hasNats,
  type NatsBinary,
  type NatsInfo,
  type NatsServerHandle,
  type NatsVersionWanted,
  natsMissingReason,
  readNatsInfo,
  type StartNatsOptions,
  startNats,
} from "./nats.js";
export { freePort } from "./port.js";
export { repoRoot } from "./root.js";
export { type TempDir, tempDir } from "./temp.js";
export { type WaitForOptions, waitFor } from "./wait.js";
