/**
 * Limits every HTTP listener of the agent gets (the unix socket API, the mTLS TCP API,
 * services_listen): a local user or a peer must not be able to hold the root agent's memory or
 * sockets with slow or idle connections.
 *   - headers must arrive within 10 s (slowloris), a whole non-streaming request within 30 s;
 *   - a keep-alive connection idle between requests is closed after 5 s;
 *   - a connection on which nothing moves for 10 min is closed (streams send a heartbeat well
 *     before that: events every 30 s, services every 5 s);
 *   - at most `maxConnections` connections at once (more are closed at accept, with a warning
 *     naming the listener and the limit: at most one line a second, with the count);
 *   - TLS listeners: the handshake must complete within 10 s (`handshakeTimeoutMs`, an option of
 *     https.createServer: see tlsOptions()).
 */
import type { Server } from 'node:http';
import type { Logger } from '../lib/log.js';

export interface ListenerLimits {
  maxConnections?: number;
  headersTimeoutMs?: number;
  keepAliveTimeoutMs?: number;
  idleTimeoutMs?: number;
  handshakeTimeoutMs?: number;
  /** Where a refused connection (over maxConnections) is logged. */
  log?: Logger;
  /** The listener's name in that line: `api socket`, `api tls`, `services_listen`, `dashboard`. */
  name?: string;
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

/** The TLS part of the limits, for https.createServer's options. */
export function tlsOptions(o: ListenerLimits = {}): { handshakeTimeout: number } {
  return { handshakeTimeout: o.handshakeTimeoutMs ?? LIMITS.handshakeTimeoutMs };
}

/** Apply the limits to a node http/https server (before listen). */
export function harden(server: Server, o: ListenerLimits = {}): Server {
  const headers = o.headersTimeoutMs ?? LIMITS.headersTimeoutMs;
  server.headersTimeout = headers;
  // requestTimeout covers receiving the request, not streaming the response.
  server.requestTimeout = Math.max(LIMITS.requestTimeoutMs, headers);
  server.keepAliveTimeout = o.keepAliveTimeoutMs ?? LIMITS.keepAliveTimeoutMs;
  server.setTimeout(o.idleTimeoutMs ?? LIMITS.idleTimeoutMs, (sock) => sock.destroy());
  const max = o.maxConnections ?? LIMITS.maxConnections;
  server.maxConnections = max;
  // 'drop': node closed a connection because maxConnections were open.
  let last = 0;
  let since = 0;
  server.on('drop', (d?: { remoteAddress?: string; remotePort?: number }) => {
    since++;
    const now = Date.now();
    if (!o.log || now - last < 1000) return;
    o.log.warn(
      {
        listener: o.name ?? 'api',
        limit: max,
        dropped: since,
        ...(d?.remoteAddress ? { client: `${d.remoteAddress}:${d.remotePort}` } : {}),
      },
      `${o.name ?? 'api'}: connection limit ${max} reached; new connections are closed`,
    );
    last = now;
    since = 0;
  });
  return server;
}
