import { createServer, type IncomingMessage, request, type Server } from "node:http";
import type { Socket } from "node:net";

/** What the fault proxy does with one request. */
export type Fault =
  /** Answer with this S3 error instead of forwarding. */
  | { kind: "error"; status: number; code: string }
  /** Accept the request and never answer. */
  | { kind: "stall" }
  /** Forward, send the response headers and the first `bytes` of the body, then go silent. */
  | { kind: "stall-body"; bytes: number };

/** A fault-injecting HTTP proxy in front of an S3 endpoint (forwards everything else unchanged). */
export interface FaultProxy {
  readonly endpoint: string;
  /** Requests seen, as `METHOD path`. */
  readonly seen: string[];
  close(): Promise<void>;
}

/**
 * Starts a proxy on 127.0.0.1. Headers (host included) are forwarded untouched, so SigV4
 * signatures computed for the proxy's address still verify upstream.
 */
export async function startFaultProxy(
  target: string,
  decide: (req: IncomingMessage) => Fault | undefined,
): Promise<FaultProxy> {
  const upstream = new URL(target);
  const sockets = new Set<Socket>();
  const seen: string[] = [];
  const server: Server = createServer((req, res) => {
    seen.push(`${req.method} ${req.url}`);
    const fault = decide(req);
    if (fault?.kind === "stall") return; // keep the socket open, answer nothing
    if (fault?.kind === "error") {
      req.resume();
      const body = `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${fault.code}</Code><Message>injected by the test proxy</Message><RequestId>proxy</RequestId></Error>`;
      res.writeHead(fault.status, { "content-type": "application/xml", "content-length": Buffer.byteLength(body) });
      res.end(body);
      return;
    }
    const up = request(
      { host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers: req.headers },
      (upRes) => {
        res.writeHead(upRes.statusCode ?? 502, upRes.headers);
        if (fault?.kind !== "stall-body") {
          upRes.pipe(res);
          return;
        }
        let left = fault.bytes;
        upRes.on("data", (chunk: Buffer) => {
          if (left <= 0) return;
          res.write(chunk.subarray(0, left));
          left -= chunk.byteLength;
        });
      },
    );
    up.on("error", () => res.destroy());
    req.pipe(up);
  });
  server.on("connection", (s) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  if (address === null || typeof address === "string") throw new Error("proxy: no address");
  return {
    endpoint: `http://127.0.0.1:${address.port}`,
    seen,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
