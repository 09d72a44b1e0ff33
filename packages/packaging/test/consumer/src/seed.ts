// Writes the bucket the README example folds: two live route keys, one deleted, one other key.
import { connect } from "@slipstream/nats";

const url = process.argv[2];
if (!url) throw new TypeError("usage: seed <natsUrl>");
const enc = new TextEncoder();
const nc = await connect({ servers: url });
const routes = await nc.store({ name: "routes" });
await routes.writer.put("route.a", enc.encode("10.0.0.1"));
await routes.writer.put("route.b", enc.encode("10.0.0.2"));
await routes.writer.put("route.c", enc.encode("10.0.0.3"));
await routes.writer.put("other.x", enc.encode("ignored"));
await routes.writer.delete("route.b");
await nc.close();
console.log("seeded");
