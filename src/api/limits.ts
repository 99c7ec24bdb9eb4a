/**
 * Limits every HTTP listener of the agent gets (the unix socket API, the mTLS TCP API,
 * services_listen): a local user or a peer must not be able to hold the root agent's memory or
 * sockets with slow or idle connections.
 *   - headers must arrive within 10 s (slowloris), a whole non-streaming request within 30 s;
 *   - a keep-alive connection idle between requests is closed after 5 s;
 *   - a connection on which nothing moves for 10 min is closed (streams send a heartbeat well
 *     before that: events every 30 s, services every 5 s);
 *   - at most `maxConnections` connections at once (more are closed at accept);
 *   - TLS listeners: the handshake must complete within 10 s.
 */
import type { Server } from 'node:http';

export interface ListenerLimits {
  maxConnections?: number;
  headersTimeoutMs?: number;
  keepAliveTimeoutMs?: number;
  idleTimeoutMs?: number;
}

export const LIMITS = {
  headersTimeoutMs: 10_000,
  requestTimeoutMs: 30_000,
  keepAliveTimeoutMs: 5_000,
  idleTimeoutMs: 10 * 60_000,
  handshakeTimeoutMs: 10_000,
  maxConnections: 1024,
} as const;

/** Options for http.createServer: header/request timeouts are checked every second (default 30 s). */
export function serverOptions(): { connectionsCheckingInterval: number } {
  return { connectionsCheckingInterval: 1000 };
}

/** Apply the limits to a node http/https server (before listen). */
export function harden(server: Server, o: ListenerLimits = {}): Server {
  const headers = o.headersTimeoutMs ?? LIMITS.headersTimeoutMs;
  server.headersTimeout = headers;
  // requestTimeout covers receiving the request, not streaming the response.
  server.requestTimeout = Math.max(LIMITS.requestTimeoutMs, headers);
  server.keepAliveTimeout = o.keepAliveTimeoutMs ?? LIMITS.keepAliveTimeoutMs;
  server.setTimeout(o.idleTimeoutMs ?? LIMITS.idleTimeoutMs, (sock) => sock.destroy());
  server.maxConnections = o.maxConnections ?? LIMITS.maxConnections;
  return server;
}
