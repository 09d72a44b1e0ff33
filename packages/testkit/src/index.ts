/**
 * `@slipstream/testkit` — private helpers for slipstream's tests: real servers on free
 * loopback ports with temporary state, plus small async utilities. Not published.
 *
 * @packageDocumentation
 */

export {
  findNatsServer,
  hasNats,
  natsMissingReason,
  readNatsInfo,
  startNats,
  type NatsBinary,
  type NatsInfo,
  type NatsServerHandle,
  type NatsVersionWanted,
  type StartNatsOptions,
} from "./nats.js";
export { freePort } from "./port.js";
export { repoRoot } from "./root.js";
export { tempDir, type TempDir } from "./temp.js";
export { waitFor, type WaitForOptions } from "./wait.js";
