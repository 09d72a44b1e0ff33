/**
 * Seeds a bucket from its own process (see `seed` in nats.ts), so the memory of thousands
 * of publishes in flight never counts in the RSS of the benchmark that measures a fold.
 * Usage: `node seed-child.js <server url> <bucket> <entries> <valueBytes>`.
 */
import { jetstream } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import { keyOf, valueFor } from "./data.js";

/** Publishes kept in flight while seeding (the async-publish limit is reached near here). */
const SEED_WINDOW = 2000;

async function main(): Promise<void> {
  const [url, bucket, entriesArg, valueBytesArg] = process.argv.slice(2);
  const entries = Number(entriesArg);
  const valueBytes = Number(valueBytesArg);
  if (!url || !bucket || !Number.isInteger(entries) || !Number.isInteger(valueBytes)) {
    throw new TypeError("usage: seed-child <url> <bucket> <entries> <valueBytes>");
  }
  const nc = await connect({ servers: url, name: "slipstream-bench-seed" });
  try {
    const js = jetstream(nc);
    const subject = `$KV.${bucket}.`;
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < entries) {
        const i = next++;
        await js.publish(subject + keyOf(i), valueFor(i, valueBytes));
      }
    };
    await Promise.all(Array.from({ length: SEED_WINDOW }, worker));
  } finally {
    await nc.close();
  }
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? (err.stack ?? err.message) : String(err));
  process.exitCode = 1;
});
