/**
 * The bounds of the agent's configuration values: what each key allows, checked when the value is
 * read (so the error names the key, its source and the allowed range), and the checks between
 * keys, run once every layer is merged. Pure.
 *
 * The ranges are what an operator would expect from fleet's defaults (agent_ttl 30s,
 * engine_reconcile_interval 2s, etcd_request_timeout 1s): wide enough for the raised values fleet
 * users ran with, narrow enough that no timer overflows (Node's timers wrap past 24.8 days) or
 * spins (an engine tick of 1 ns), and that no request times out before it can be answered.
 */
import { isIP } from 'node:net';
import { parseProxySpecs } from '../discovery/services.js';
import { FlotillaError } from '../lib/errors.js';
import { isLoopbackHost, parseHostPort } from '../lib/net.js';
import type { AgentConfig } from './config-types.js';

/** Allowed range of a duration key, in seconds (inclusive). */
export interface DurationRange {
  min: number;
  max: number;
}

export const DURATION_RANGES: Record<string, DurationRange> = {
  agent_ttl: { min: 1, max: 3600 },
  engine_reconcile_interval: { min: 0.1, max: 600 },
  etcd_request_timeout: { min: 0.1, max: 300 },
  liveness_timeout: { min: 0.1, max: 3600 },
  proxy_drain_timeout: { min: 0.1, max: 3600 },
  proxy_idle_timeout: { min: 1, max: 86400 },
};

/** Allowed range of an integer key (inclusive). */
export const INT_RANGES: Record<string, { min: number; max: number; note?: string }> = {
  verbosity: { min: 0, max: 10 },
  liveness_port: { min: 0, max: 65535, note: '0 disables the responder' },
  // Two descriptors per proxied connection; flotilla.service has LimitNOFILE=65536.
  proxy_max_connections: {
    min: 1,
    max: 30000,
    note: 'per listener; each connection uses 2 file descriptors',
  },
};

/** `host:port` keys: the listeners. */
export const LISTEN_KEYS = ['api_listen', 'services_listen', 'dashboard_listen'] as const;

/** Seconds as an operator writes them: 100ms, 1s, 2.5s, 10m, 1h. */
export function formatSeconds(s: number): string {
  if (s < 1) return `${Math.round(s * 1000)}ms`;
  if (s >= 3600 && s % 3600 === 0) return `${s / 3600}h`;
  if (s >= 60 && s % 60 === 0) return `${s / 60}m`;
  return `${s}s`;
}

export function rangeText(r: DurationRange): string {
  return `${formatSeconds(r.min)} to ${formatSeconds(r.max)}`;
}

/** Why a duration is out of range (undefined: fine). */
export function checkDuration(key: string, seconds: number): string | undefined {
  const r = DURATION_RANGES[key];
  if (!r || (seconds >= r.min && seconds <= r.max)) return undefined;
  return `is out of range (allowed: ${rangeText(r)})`;
}

export function checkInt(key: string, n: number): string | undefined {
  const r = INT_RANGES[key];
  if (!r || (n >= r.min && n <= r.max)) return undefined;
  return `${n} is out of range (allowed: ${r.min} to ${r.max}${r.note ? `; ${r.note}` : ''})`;
}

/**
 * A listen address: `HOST:PORT` with PORT 1..65535 and HOST an IPv4 address, a host name, or an
 * IPv6 address in brackets (`[::1]:8080`). Undefined when valid.
 */
export function checkListen(value: string): string | undefined {
  const shown = JSON.stringify(value);
  const expect = 'expected HOST:PORT, PORT 1 to 65535, an IPv6 HOST in brackets ([::1]:PORT)';
  const m = /^(?:\[([^\]]*)\]|([^:[\]]*)):([^:]*)$/.exec(value);
  if (!m) {
    if (!value.startsWith('[') && (value.match(/:/g) ?? []).length > 1)
      return `${shown} is not host:port: an IPv6 address must be in brackets ([::1]:PORT)`;
    return `${shown} is not host:port (${expect})`;
  }
  const host = m[1] ?? m[2]!;
  const port = m[3]!;
  if (!/^\d{1,5}$/.test(port) || Number(port) < 1 || Number(port) > 65535)
    return `${shown}: port ${JSON.stringify(port)} is not a number from 1 to 65535`;
  if (m[1] !== undefined) {
    if (isIP(host) !== 6) return `${shown}: [${host}] is not an IPv6 address`;
  } else if (host === '') {
    return `${shown}: the host is missing (write 0.0.0.0:${port} for every address)`;
  } else if (!isIP(host) && !isHostName(host)) {
    return `${shown}: ${JSON.stringify(host)} is not an IP address or host name`;
  }
  return undefined;
}

/** An RFC 1123 host name (letters, digits, `-`, dot-separated labels of at most 63). */
export function isHostName(h: string): boolean {
  if (h.length > 253 || /^\d+(\.\d+)*$/.test(h)) return false;
  return h.split('.').every((l) => /^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/.test(l));
}

export function checkPublicIp(value: string): string | undefined {
  if (value === '' || isIP(value) !== 0) return undefined;
  return `${JSON.stringify(value)} is not an IP address (IPv4 like 10.0.0.5 or IPv6; empty: detect it)`;
}

/**
 * etcd_key_prefix: a key directory, `/` first. A missing trailing `/` is added (fleet.conf's
 * `/_coreos.com/fleet` means the same directory); `/` alone or an empty prefix would take the
 * whole keyspace.
 */
export function normalizeKeyPrefix(value: string): string | { why: string } {
  const want = 'it must be a key directory starting with "/", e.g. /flotilla/';
  if (value === '') return { why: `is empty: it would take the whole etcd keyspace; ${want}` };
  if (!value.startsWith('/')) return { why: `${JSON.stringify(value)} does not start with "/"; ${want}` };
  if (/^\/+$/.test(value))
    return { why: `${JSON.stringify(value)} would take the whole etcd keyspace; ${want}` };
  // eslint-disable-next-line no-control-regex
  if (/[\s\x00-\x1f\x7f]/.test(value) || value.includes('//'))
    return { why: `${JSON.stringify(value)} contains whitespace, a control character or "//"; ${want}` };
  return value.endsWith('/') ? value : `${value}/`;
}

/** Checks between keys, once every layer is merged; `where(key)` is the source of a key's value. */
export function validateConfig(c: AgentConfig, where: (key: string) => string | undefined): void {
  const err = (field: string, msg: string) => {
    const origin = where(field);
    return new FlotillaError('E_CONFIG', `${origin ? `${origin}: ` : ''}${field}: ${msg}`, {
      field,
      ...(origin ? { origin } : {}),
    });
  };
  if ((c.etcdCertfile === undefined) !== (c.etcdKeyfile === undefined)) {
    throw err('etcd_certfile', 'etcd_certfile and etcd_keyfile must be set together');
  }
  if (c.apiListen !== undefined && c.apiListen !== '') {
    if (!c.apiCertfile || !c.apiKeyfile || !c.apiCafile) {
      throw err(
        'api_listen',
        'a TCP listener requires api_cafile, api_certfile and api_keyfile (mutual TLS)',
      );
    }
  }
  if (c.livenessTimeout !== undefined && c.livenessTimeout >= c.agentTtl)
    throw err(
      'liveness_timeout',
      `${formatSeconds(c.livenessTimeout)} must be shorter than agent_ttl (${formatSeconds(c.agentTtl)}); the lease covers the rest`,
    );
  if (c.etcdPassword !== undefined && c.etcdUsername === undefined)
    throw err('etcd_password', 'etcd_password is set without etcd_username');
  if (c.servicesListen !== undefined && c.servicesListen !== '') {
    const hp = parseHostPort(c.servicesListen);
    if (!hp) throw err('services_listen', `${JSON.stringify(c.servicesListen)} is not host:port`);
    if (!isLoopbackHost(hp.host)) {
      throw err(
        'services_listen',
        `${hp.host} is not a loopback address: the services listener serves plain HTTP without authentication (use the API's mutual-TLS listener, api_listen, for remote readers)`,
      );
    }
  }
  if (c.proxyServices !== undefined && c.proxyServices !== '') {
    try {
      parseProxySpecs([c.proxyServices], 'proxy_services');
    } catch (e) {
      throw err('proxy_services', (e as Error).message.replace(/^proxy_services: /, ''));
    }
  }
  if (c.dashboardListen !== undefined && c.dashboardListen !== '') {
    const hp = parseHostPort(c.dashboardListen);
    if (!hp) throw err('dashboard_listen', `${JSON.stringify(c.dashboardListen)} is not host:port`);
    const tls = !!c.dashboardCertfile || !!c.dashboardKeyfile;
    if (tls && !(c.dashboardCertfile && c.dashboardKeyfile))
      throw err('dashboard_certfile', 'dashboard_certfile and dashboard_keyfile must be set together');
    if (!tls && !isLoopbackHost(hp.host))
      throw err(
        'dashboard_listen',
        `${hp.host} is not a loopback address: a dashboard bound elsewhere requires TLS (dashboard_certfile, dashboard_keyfile); or bind 127.0.0.1 and reach it with ssh -L`,
      );
    if (c.dashboardCafile && !tls)
      throw err('dashboard_cafile', 'client certificates need TLS (dashboard_certfile, dashboard_keyfile)');
  }
  if (!['auto', 'kernel', 'userspace'].includes(c.proxyMode)) {
    throw err('proxy_mode', `${JSON.stringify(c.proxyMode)} is not one of auto, kernel, userspace`);
  }
}
