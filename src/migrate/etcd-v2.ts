/**
 * Reading a fleet cluster's keys through etcd's v2 keys API (what fleet used): one recursive GET of
 * the prefix, flattened to leaf keys relative to it. Read only. Endpoints are tried in order; https
 * URLs use TLS (verified against `caFile`, else the system roots; never downgraded), and
 * `https://user:pass@host` sends basic auth (the password never appears in a message).
 */
import { readFileSync } from 'node:fs';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { FlotillaError } from '../lib/errors.js';
import type { FleetKey } from './fleet-plan.js';

export interface V2ReadOptions {
  endpoints: string[];
  /** fleet's etcd_key_prefix, default /_coreos.com/fleet/ */
  prefix: string;
  caFile?: string;
  certFile?: string;
  keyFile?: string;
  timeoutMs?: number;
}

interface V2Node {
  key?: string;
  value?: string;
  dir?: boolean;
  nodes?: V2Node[];
}

const safe = (u: URL): string => `${u.protocol}//${u.host}`;

function get(url: URL, opts: V2ReadOptions): Promise<{ status: number; body: string; type: string }> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { accept: 'application/json' };
    if (url.username || url.password)
      headers.authorization = `Basic ${Buffer.from(`${decodeURIComponent(url.username)}:${decodeURIComponent(url.password)}`).toString('base64')}`;
    const target = new URL(url.href);
    target.username = '';
    target.password = '';
    const tls =
      url.protocol === 'https:'
        ? {
            ...(opts.caFile ? { ca: readFileSync(opts.caFile) } : {}),
            ...(opts.certFile ? { cert: readFileSync(opts.certFile) } : {}),
            ...(opts.keyFile ? { key: readFileSync(opts.keyFile) } : {}),
          }
        : {};
    const req = (url.protocol === 'https:' ? httpsRequest : httpRequest)(
      target,
      { method: 'GET', headers, timeout: opts.timeoutMs ?? 10_000, ...tls },
      (res: IncomingMessage) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            body: Buffer.concat(chunks).toString('utf8'),
            type: String(res.headers['content-type'] ?? ''),
          }),
        );
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`no answer in ${opts.timeoutMs ?? 10_000} ms`)));
    req.on('error', reject);
    req.end();
  });
}

function flatten(node: V2Node, prefix: string, out: FleetKey[]): void {
  if (node.dir || node.nodes) {
    for (const n of node.nodes ?? []) flatten(n, prefix, out);
    return;
  }
  if (typeof node.key !== 'string' || !node.key.startsWith(prefix)) return;
  out.push({ key: node.key.slice(prefix.length), value: node.value ?? '' });
}

/** Normalize fleet's key prefix to `/x/y/`; E_USAGE-like E_MIGRATE for a prefix that cannot be one. */
export function normalizePrefix(prefix: string): string {
  if (!prefix.startsWith('/') || prefix.includes('//') || /[?#\s]/.test(prefix))
    throw new FlotillaError(
      'E_MIGRATE',
      `--prefix ${JSON.stringify(prefix)} is not an etcd v2 key prefix like /_coreos.com/fleet/`,
      {
        field: 'prefix',
      },
    );
  return prefix.endsWith('/') ? prefix : `${prefix}/`;
}

export async function readFleetKeys(opts: V2ReadOptions): Promise<{ keys: FleetKey[]; endpoint: string }> {
  const prefix = normalizePrefix(opts.prefix);
  const failures: string[] = [];
  for (const ep of opts.endpoints) {
    let base: URL;
    try {
      base = new URL(ep);
    } catch {
      throw new FlotillaError('E_MIGRATE', `--etcd-endpoint ${JSON.stringify(ep)} is not a URL`, {
        field: 'etcd-endpoint',
      });
    }
    if (base.protocol !== 'http:' && base.protocol !== 'https:')
      throw new FlotillaError(
        'E_MIGRATE',
        `--etcd-endpoint ${safe(base)}: only http:// and https:// are supported`,
        {
          field: 'etcd-endpoint',
        },
      );
    if (base.protocol === 'http:' && (opts.caFile || opts.certFile || opts.keyFile))
      throw new FlotillaError(
        'E_MIGRATE',
        `--etcd-endpoint ${safe(base)} is plain http but TLS files were given: use https:// (TLS is never dropped)`,
        { field: 'etcd-endpoint' },
      );
    const url = new URL(`${base.href.replace(/\/+$/, '')}/v2/keys${prefix.slice(0, -1)}`);
    url.search = '?recursive=true&sorted=true';
    url.username = base.username;
    url.password = base.password;
    let res: Awaited<ReturnType<typeof get>>;
    try {
      res = await get(url, opts);
    } catch (err) {
      failures.push(`${safe(base)}: ${(err as Error).message}`);
      continue;
    }
    const parsed = ((): { errorCode?: number; message?: string; node?: V2Node } | undefined => {
      try {
        return JSON.parse(res.body) as { errorCode?: number; message?: string; node?: V2Node };
      } catch {
        return undefined;
      }
    })();
    if (res.status === 404 && parsed?.errorCode === 100)
      throw new FlotillaError(
        'E_MIGRATE',
        `etcd at ${safe(base)} has no keys under ${prefix} (is fleet's etcd_key_prefix different? give --prefix)`,
        { endpoint: safe(base), prefix },
      );
    if (res.status === 404 || (res.status === 200 && !parsed))
      throw new FlotillaError(
        'E_MIGRATE',
        `etcd at ${safe(base)} does not serve the v2 keys API (etcd 3.4 needs --enable-v2=true; fleet's keys live only there)`,
        { endpoint: safe(base) },
      );
    if (res.status === 401 || res.status === 403)
      throw new FlotillaError(
        'E_MIGRATE',
        `etcd at ${safe(base)} refused the read (HTTP ${res.status}): give https://USER:PASSWORD@host if it has auth`,
        { endpoint: safe(base) },
      );
    if (res.status !== 200 || !parsed?.node) {
      failures.push(`${safe(base)}: HTTP ${res.status} ${parsed?.message ?? res.body.slice(0, 200)}`);
      continue;
    }
    const keys: FleetKey[] = [];
    flatten(parsed.node, prefix, keys);
    return { keys, endpoint: safe(base) };
  }
  throw new FlotillaError('E_MIGRATE', `cannot read fleet's keys from etcd: ${failures.join('; ')}`, {
    endpoints: opts.endpoints.map((e) => {
      try {
        return safe(new URL(e));
      } catch {
        return '?';
      }
    }),
  });
}
