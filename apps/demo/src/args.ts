/** The demo's command line: `--transport fs|s3|azure`, `--nats URL`, `--routes N`. */
import { TRANSPORTS, type TransportKind } from "./transports.js";

/** Parsed demo options. */
export interface DemoArgs {
  transport: TransportKind;
  /** An external nats-server; undefined = start one through the test kit. */
  nats: string | undefined;
  routes: number;
  help: boolean;
}

/** Default size: tens of thousands of routes. */
export const DEFAULT_ROUTES = 30_000;
/** Below this the story's windows (a node's downtime, the churn) no longer fit in the table. */
export const MIN_ROUTES = 200;

/** The usage text (`--help`, and after an argument error). */
export const USAGE = `usage: npm run demo -- [--transport fs|s3|azure] [--nats URL] [--routes N]

  --transport  where artifacts go (default fs). s3 starts s3rver, azure starts Azurite,
               unless DEMO_S3_BUCKET (with the usual AWS_* variables) or
               AZURE_STORAGE_CONNECTION_STRING (and DEMO_AZURE_CONTAINER) name a real one
  --nats       an external nats-server with JetStream (default: start one)
  --routes     routes in the table (default ${DEFAULT_ROUTES.toLocaleString("en-US")}, at least ${MIN_ROUTES})`;

/** Parses argv (without node and the script); throws an Error with a usage message on bad input. */
export function parseArgs(argv: readonly string[], env: NodeJS.ProcessEnv = {}): DemoArgs {
  const out: DemoArgs = {
    transport: "fs",
    nats: undefined,
    routes: env.DEMO_ROUTES ? Number(env.DEMO_ROUTES) : DEFAULT_ROUTES,
    help: false,
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] ?? "";
    const [flag, inline] = arg.startsWith("--") && arg.includes("=") ? arg.split("=", 2) : [arg, undefined];
    const value = (): string => {
      const v = inline ?? argv[++i];
      if (v === undefined || v === "") throw new Error(`${flag} needs a value\n\n${USAGE}`);
      return v;
    };
    if (flag === "--") continue;
    else if (flag === "--help" || flag === "-h") out.help = true;
    else if (flag === "--transport") {
      const v = value();
      if (!(TRANSPORTS as readonly string[]).includes(v))
        throw new Error(`--transport must be one of ${TRANSPORTS.join(", ")}, got ${v}\n\n${USAGE}`);
      out.transport = v as TransportKind;
    } else if (flag === "--nats") out.nats = value();
    else if (flag === "--routes") out.routes = Number(value());
    else throw new Error(`unknown argument ${arg}\n\n${USAGE}`);
  }
  if (!Number.isSafeInteger(out.routes) || out.routes < MIN_ROUTES)
    throw new Error(`--routes must be an integer of at least ${MIN_ROUTES}\n\n${USAGE}`);
  return out;
}
