import { createServer } from "node:net";

/**
 * Asks the OS for a currently free TCP port: binds port 0 on `host`, reads the port and
 * closes the listener. Another process may grab the port before it is used, so callers
 * that bind it later must retry on `EADDRINUSE` ({@link startNats} does).
 *
 * @param host - the interface to probe (default `127.0.0.1`)
 * @returns a port number that was free a moment ago
 */
export function freePort(host = "127.0.0.1"): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once("error", reject);
    server.listen({ port: 0, host, exclusive: true }, () => {
      const address = server.address();
      if (address === null || typeof address === "string") {
        server.close();
        reject(new Error("freePort: unexpected listener address"));
        return;
      }
      const { port } = address;
      server.close((err) => (err ? reject(err) : resolve(port)));
    });
  });
}
