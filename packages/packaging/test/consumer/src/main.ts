// Runs the README example (readme-example.ts, copied from apps/demo) until SIGTERM.
import { readmeExample } from "./readme-example.js";

const [url, dir] = process.argv.slice(2);
if (!url || !dir) throw new TypeError("usage: main <natsUrl> <foldDir>");
await readmeExample(url, dir);
console.log("ready");
