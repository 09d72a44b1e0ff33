/**
 * Fault injection at the TCP level (the only stand-ins in these tests: the storage server
 * itself is always a real Azurite).
 */
import { connect, createServer, type Server, type Socket } from "node:net";

/** A TCP endpoint under test control. */
export interface FaultEndpoint {
  readonly port: number;
  /** Connections accepted so far. */
  accepted(): number;
  /** Connections currently open (the client has not closed them). */
  open(): number;
  /** Stops listening and destroys every connection. */
  close(): Promise<void>;
}

async function serve(onConnection: (socket: Socket) => void): Promise<FaultEndpoint> {
  const sockets = new Set<Socket>();
  let accepted = 0;
  const server: Server = createServer((socket) => {
    accepted++;
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    socket.on("error", () => {});
    onConnection(socket);
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen({ host: "127.0.0.1", port: 0 }, resolve);
  });
  const address = server.address();
  if (address === null || typeof address === "string") throw new Error("unexpected listener address");
  return {
    port: address.port,
    accepted: () => accepted,
    open: () => sockets.size,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** Accepts connections, reads every request byte and never answers. */
export function stalledEndpoint(): Promise<FaultEndpoint> {
  return serve((socket) => socket.resume());
}

/**
 * Forwards to `127.0.0.1:targetPort`, but passes at most `responseBytes` bytes of each
 * connection's answers back to the client and silently holds the rest: the response starts,
 * then stalls mid-body.
 */
export function stallingProxy(targetPort: number, responseBytes: number): Promise<FaultEndpoint> {
  return serve((client) => {
    const upstream = connect({ host: "127.0.0.1", port: targetPort });
    upstream.on("error", () => client.destroy());
    client.on("close", () => upstream.destroy());
    upstream.on("close", () => client.destroy());
    client.pipe(upstream);
    let passed = 0;
    upstream.on("data", (chunk: Buffer) => {
      const room = responseBytes - passed;
      if (room <= 0) return;
      client.write(chunk.subarray(0, room));
      passed += Math.min(room, chunk.byteLength);
    });
  });
}

/** A transparent forwarder to `127.0.0.1:targetPort` that counts the bytes of the answers. */
export async function countingProxy(targetPort: number): Promise<FaultEndpoint & { responseBytes(): number }> {
  let bytes = 0;
  const endpoint = await serve((client) => {
    const upstream = connect({ host: "127.0.0.1", port: targetPort });
    upstream.on("error", () => client.destroy());
    client.on("close", () => upstream.destroy());
    upstream.on("close", () => client.destroy());
    upstream.on("data", (chunk: Buffer) => {
      bytes += chunk.byteLength;
    });
    client.pipe(upstream);
    upstream.pipe(client);
  });
  return { ...endpoint, responseBytes: () => bytes };
}
