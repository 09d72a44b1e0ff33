/**
 * `@slipstream/testkit` — private helpers for slipstream's tests: real servers on free
 * loopback ports with temporary state, plus small async utilities. Not published.
 *
 * @packageDocumentation
 */

export { type AzuriteHandle, type StartAzuriteOptions, startAzurite } from "./azurite.js";
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
export {
  type KeyPair,
  type NatsOperatorSetup,
  natsOperatorConfig,
  natsUntrustedCreds,
  natsUserCreds,
} from "./nats-auth.js";
export { freePort } from "./port.js";
export { repoRoot } from "./root.js";
export { type S3ClientConfigLike, type S3rverHandle, type StartS3rverOptions, startS3rver } from "./s3.js";
export { type TempDir, tempDir } from "./temp.js";
export { hasOpenssl, makeTlsFiles, type TlsFiles } from "./tls.js";
export { type WaitForOptions, waitFor } from "./wait.js";
