/**
 * Service discovery, the pure parts: service names, the `NAME:PORT` spec a container carries (the
 * label `flotilla.service`, written by a container unit's `Service=` option), and small helpers over
 * endpoint records.
 *
 * A spec is one or more comma-separated `NAME:PORT` pairs: `database:5432` or `web:80,admin:8080`.
 * NAME is a DNS label (src/registry/types.ts SERVICE_NAME_RE); PORT (1–65535) is the TCP port
 * clients reach on the machine: the container's own port with `--network host`, the host side of a
 * published port (`-p 15432:5432` → `database:15432`) otherwise. The endpoint is `machine-ip:PORT`.
 */
import { FlotillaError } from '../lib/errors.js';
import { parseHostPort } from '../lib/net.js';
import { SERVICE_NAME_RE, type EndpointHealth, type ServiceEndpointRecord } from '../registry/types.js';

/** The container label that asks for registration: `flotilla.service=NAME:PORT[,NAME:PORT…]`. */
export const SERVICE_LABEL = 'flotilla.service';
/** The container label naming the flotilla unit that runs the container (set by container units). */
export const UNIT_LABEL = 'flotilla.unit';

export interface ServiceSpec {
  name: string;
  port: number;
}

/** Throws E_SERVICE_SPEC unless `name` is a valid service name; `origin` says where it came from. */
export function validateServiceName(name: string, origin = 'service name'): string {
  if (!SERVICE_NAME_RE.test(name)) {
    throw new FlotillaError(
      'E_SERVICE_SPEC',
      `${origin}: invalid service name ${JSON.stringify(name)}: use 1-63 lower-case letters, digits ` +
        'and hyphens, starting and ending with a letter or digit',
      { field: 'service' },
    );
  }
  return name;
}

/** Parse a port number `1..65535` written in decimal. */
export function parsePort(text: string): number | undefined {
  if (!/^\d{1,5}$/.test(text)) return undefined;
  const n = Number(text);
  return n >= 1 && n <= 65535 ? n : undefined;
}

/**
 * Parse `NAME:PORT[,NAME:PORT…]`. `origin` names the source in errors (e.g. `label flotilla.service
 * of container web-1`). Duplicates (same name and port) are dropped.
 */
export function parseServiceSpec(text: string, origin = SERVICE_LABEL): ServiceSpec[] {
  const out: ServiceSpec[] = [];
  const parts = text.split(',').map((s) => s.trim());
  if (parts.every((p) => p === '')) {
    throw new FlotillaError('E_SERVICE_SPEC', `${origin}: empty service spec (expected NAME:PORT)`, {
      field: 'service',
    });
  }
  for (const part of parts) {
    if (part === '') continue;
    const colon = part.lastIndexOf(':');
    if (colon <= 0) {
      throw new FlotillaError(
        'E_SERVICE_SPEC',
        `${origin}: ${JSON.stringify(part)} is not NAME:PORT (e.g. database:5432)`,
        { field: 'service' },
      );
    }
    const name = validateServiceName(part.slice(0, colon), origin);
    const port = parsePort(part.slice(colon + 1));
    if (port === undefined) {
      throw new FlotillaError(
        'E_SERVICE_SPEC',
        `${origin}: ${JSON.stringify(part)}: port must be a number from 1 to 65535`,
        { field: 'service' },
      );
    }
    if (!out.some((s) => s.name === name && s.port === port)) out.push({ name, port });
  }
  return out;
}

/** Can clients be sent to an endpoint with this health? (`starting` has not passed its check yet.) */
export function isUsable(health: EndpointHealth): boolean {
  return health === 'none' || health === 'healthy';
}

/** `ip:port`, with brackets for IPv6. */
export function endpointAddress(rec: Pick<ServiceEndpointRecord, 'ip' | 'port'>): string {
  return rec.ip.includes(':') ? `[${rec.ip}]:${rec.port}` : `${rec.ip}:${rec.port}`;
}

/** Records grouped by service name, services and endpoints in a stable order. */
export function groupByService(records: ServiceEndpointRecord[]): Map<string, ServiceEndpointRecord[]> {
  const out = new Map<string, ServiceEndpointRecord[]>();
  const sorted = [...records].sort(
    (a, b) =>
      a.service.localeCompare(b.service) ||
      a.machineID.localeCompare(b.machineID) ||
      a.port - b.port ||
      a.ip.localeCompare(b.ip),
  );
  for (const r of sorted) {
    let list = out.get(r.service);
    if (!list) out.set(r.service, (list = []));
    list.push(r);
  }
  return out;
}

export interface ProxyListenSpec {
  service: string;
  host: string;
  /** 0 = any free port (tests). */
  port: number;
}

/**
 * Parse proxy listeners: `NAME=HOST:PORT[,NAME=HOST:PORT…]` (config `proxy_services`, `flotilla proxy`
 * arguments). Every listen address must be distinct.
 */
export function parseProxySpecs(items: string[], origin: string): ProxyListenSpec[] {
  const out: ProxyListenSpec[] = [];
  for (const raw of items.flatMap((s) => s.split(','))) {
    const item = raw.trim();
    if (item === '') continue;
    const eq = item.indexOf('=');
    const hp = eq > 0 ? parseHostPort(item.slice(eq + 1)) : undefined;
    if (eq <= 0 || !hp) {
      throw new FlotillaError(
        'E_SERVICE_SPEC',
        `${origin}: ${JSON.stringify(item)} is not NAME=HOST:PORT (e.g. database=127.0.0.1:15432)`,
        { field: 'proxy' },
      );
    }
    const service = validateServiceName(item.slice(0, eq), origin);
    if (out.some((o) => o.host === hp.host && o.port === hp.port && hp.port !== 0)) {
      throw new FlotillaError('E_SERVICE_SPEC', `${origin}: ${hp.host}:${hp.port} is used twice`, {
        field: 'proxy',
      });
    }
    out.push({ service, host: hp.host, port: hp.port });
  }
  return out;
}
