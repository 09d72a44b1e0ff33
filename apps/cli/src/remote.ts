/** Choosing the artifact key under a transport URL. */
import type { TrustPolicy } from "@slipstream/core";
import { type CatalogEntry, describeArtifacts } from "@slipstream/transport";
import { CliError, EXIT, usage } from "./exit.js";
import type { TransportTarget } from "./transport-url.js";

/**
 * The catalog entry of `key`, or — when no key is given — of the only artifact under the
 * URL. No artifact → `INPUT`; several and no key → `USAGE` listing them.
 */
export async function pickArtifact(
  target: TransportTarget,
  key: string | undefined,
  opts: { timeoutMs: number; signal?: AbortSignal; trust?: TrustPolicy | undefined },
): Promise<CatalogEntry> {
  const entries = await describeArtifacts(target.store, {
    prefix: target.prefix,
    ...(opts.trust ? { trust: opts.trust } : {}),
    timeoutMs: opts.timeoutMs,
    ...(key !== undefined ? { key } : {}),
    ...(opts.signal ? { signal: opts.signal } : {}),
  });
  const published = entries.filter((e) => e.pointer !== undefined);
  if (key !== undefined) {
    const e = published.find((x) => x.key === key);
    if (!e) throw new CliError(EXIT.INPUT, "NOT_FOUND", `no artifact ${JSON.stringify(key)} at ${target.display}`);
    return e;
  }
  if (published.length === 0) throw new CliError(EXIT.INPUT, "NOT_FOUND", `no artifact published at ${target.display}`);
  if (published.length > 1) {
    throw usage(
      `${target.display} holds ${published.length} artifacts; name one with --key: ${published.map((e) => e.key).join(", ")}`,
    );
  }
  return published[0] as CatalogEntry;
}
