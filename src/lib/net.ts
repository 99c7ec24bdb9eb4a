/**
 * Small address helpers shared by the config loader, the API and the proxy: `host:port` parsing and
 * the loopback test. Pure.
 */

/**
 * `host:port` (or `[v6]:port`) → parts. Used for listen addresses. Returns undefined when malformed.
 */
export function parseHostPort(text: string): { host: string; port: number } | undefined {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:\s[\]]+)):(\d{1,5})$/.exec(text.trim());
  if (!m) return undefined;
  const port = Number(m[3]);
  if (port > 65535) return undefined;
  return { host: (m[1] ?? m[2])!, port };
}

/** Is `host` a loopback address (127.0.0.0/8, ::1) or `localhost`? */
export function isLoopbackHost(host: string): boolean {
  if (host === 'localhost' || host === '::1') return true;
  const m = /^127\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(host);
  return !!m && m.slice(1).every((o) => Number(o) <= 255);
}
