/**
 * The bounds of every duration, interval, port, listener, address and prefix key: each out-of-range
 * value is an E_CONFIG error naming the source (file:line, env var or flag), the key and what is
 * allowed, checked by exact message; the edges of each range are accepted.
 */
import { describe, expect, it } from 'vitest';
import { loadConfig, type LoadOptions } from '../../../src/daemon/config.js';
import { checkListen, DURATION_RANGES, formatSeconds } from '../../../src/daemon/config-check.js';
import { FlotillaError, isCode } from '../../../src/lib/errors.js';

const FILE = '/etc/flotilla/flotilla.conf';
const fromFile = (body: string): LoadOptions => ({
  env: {},
  readFile: (p) => {
    if (p === FILE) return body;
    throw Object.assign(new Error('ENOENT'), { code: 'ENOENT' });
  },
});
const noFile = (more: Partial<LoadOptions>): LoadOptions => ({
  env: {},
  readFile: () => {
    throw Object.assign(new Error('ENOENT'), { code: 'ENOENT' });
  },
  ...more,
});

function errorOf(opts: LoadOptions): FlotillaError {
  try {
    loadConfig(opts);
  } catch (e) {
    expect(isCode(e, 'E_CONFIG')).toBe(true);
    return e as FlotillaError;
  }
  throw new Error('loadConfig accepted it');
}

describe('duration bounds', () => {
  it.each([
    ['agent_ttl=1000000h', 'agent_ttl: "1000000h" is out of range (allowed: 1s to 1h)'],
    ['agent_ttl=500ms', 'agent_ttl: "500ms" is out of range (allowed: 1s to 1h)'],
    ['agent_ttl=61m', 'agent_ttl: "61m" is out of range (allowed: 1s to 1h)'],
    [
      'engine_reconcile_interval=1ns',
      'engine_reconcile_interval: "1ns" is out of range (allowed: 100ms to 10m)',
    ],
    [
      'engine_reconcile_interval=11m',
      'engine_reconcile_interval: "11m" is out of range (allowed: 100ms to 10m)',
    ],
    ['etcd_request_timeout=1ns', 'etcd_request_timeout: "1ns" is out of range (allowed: 100ms to 5m)'],
    ['etcd_request_timeout=301', 'etcd_request_timeout: "301" is out of range (allowed: 100ms to 5m)'],
    ['proxy_drain_timeout=2h', 'proxy_drain_timeout: "2h" is out of range (allowed: 100ms to 1h)'],
    ['proxy_drain_timeout=10ms', 'proxy_drain_timeout: "10ms" is out of range (allowed: 100ms to 1h)'],
    ['liveness_timeout=50ms', 'liveness_timeout: "50ms" is out of range (allowed: 100ms to 1h)'],
    ['proxy_idle_timeout=25h', 'proxy_idle_timeout: "25h" is out of range (allowed: 1s to 24h)'],
    ['proxy_idle_timeout=500ms', 'proxy_idle_timeout: "500ms" is out of range (allowed: 1s to 24h)'],
    ['agent_ttl=0', 'agent_ttl: "0" is not a positive duration (e.g. 30s, 2.5, 1m)'],
  ])('%s', (line, want) => {
    expect(errorOf(fromFile(`# conf\n${line}\n`)).message).toBe(`${FILE}:2: ${want}`);
  });

  it('names the environment variable and the flag', () => {
    expect(errorOf(noFile({ env: { FLOTILLA_AGENT_TTL: '2h' } })).message).toBe(
      'FLOTILLA_AGENT_TTL: agent_ttl: "2h" is out of range (allowed: 1s to 1h)',
    );
    expect(errorOf(noFile({ flags: { 'engine-reconcile-interval': '1ns' } })).message).toBe(
      '--engine-reconcile-interval: engine_reconcile_interval: "1ns" is out of range (allowed: 100ms to 10m)',
    );
    const e = errorOf(noFile({ env: { FLEET_ETCD_REQUEST_TIMEOUT: '1ns' } }));
    expect(e.details).toMatchObject({ field: 'etcd_request_timeout', origin: 'FLEET_ETCD_REQUEST_TIMEOUT' });
  });

  it('accepts both edges of every range', () => {
    for (const [key, r] of Object.entries(DURATION_RANGES)) {
      for (const v of [r.min, r.max]) {
        const flags: Record<string, string> = { [key.replace(/_/g, '-')]: formatSeconds(v) };
        // liveness_timeout must stay below agent_ttl
        if (key === 'liveness_timeout') flags['agent-ttl'] = '1h';
        if (key === 'liveness_timeout' && v === r.max) continue;
        expect(() => loadConfig(noFile({ flags })), `${key}=${formatSeconds(v)}`).not.toThrow();
      }
    }
  });

  it('liveness_timeout must be shorter than agent_ttl, naming where it was set', () => {
    expect(errorOf(fromFile('agent_ttl=3s\nliveness_timeout=3s')).message).toBe(
      `${FILE}:2: liveness_timeout: 3s must be shorter than agent_ttl (3s); the lease covers the rest`,
    );
  });
});

describe('integer bounds', () => {
  it.each([
    [
      'liveness_port=65536',
      'liveness_port: 65536 is out of range (allowed: 0 to 65535; 0 disables the responder)',
    ],
    ['liveness_port=-1', 'liveness_port: -1 is out of range (allowed: 0 to 65535; 0 disables the responder)'],
    ['verbosity=-1', 'verbosity: -1 is out of range (allowed: 0 to 10)'],
    ['verbosity=11', 'verbosity: 11 is out of range (allowed: 0 to 10)'],
    [
      'proxy_max_connections=0',
      'proxy_max_connections: 0 is out of range (allowed: 1 to 30000; per listener; each connection uses 2 file descriptors)',
    ],
    [
      'proxy_max_connections=30001',
      'proxy_max_connections: 30001 is out of range (allowed: 1 to 30000; per listener; each connection uses 2 file descriptors)',
    ],
  ])('%s', (line, want) => {
    expect(errorOf(fromFile(line)).message).toBe(`${FILE}:1: ${want}`);
  });

  it('proxy_max_connections: the edges are accepted, the default is 4096', () => {
    expect(loadConfig(fromFile('')).config.proxyMaxConnections).toBe(4096);
    expect(loadConfig(fromFile('proxy_max_connections=1')).config.proxyMaxConnections).toBe(1);
    expect(loadConfig(fromFile('proxy_max_connections=30000')).config.proxyMaxConnections).toBe(30000);
    expect(loadConfig(fromFile('')).config.proxyIdleTimeout).toBe(3600);
  });
});

describe('listen addresses', () => {
  it.each([
    ['api_listen=host:99999', 'api_listen: "host:99999": port "99999" is not a number from 1 to 65535'],
    [
      'api_listen=x:y:1',
      'api_listen: "x:y:1" is not host:port: an IPv6 address must be in brackets ([::1]:PORT)',
    ],
    ['api_listen=10.0.0.1:0', 'api_listen: "10.0.0.1:0": port "0" is not a number from 1 to 65535'],
    [
      'api_listen=10.0.0.1',
      'api_listen: "10.0.0.1" is not host:port (expected HOST:PORT, PORT 1 to 65535, an IPv6 HOST in brackets ([::1]:PORT))',
    ],
    ['api_listen=:4001', 'api_listen: ":4001": the host is missing (write 0.0.0.0:4001 for every address)'],
    ['api_listen=[10.0.0.1]:4001', 'api_listen: "[10.0.0.1]:4001": [10.0.0.1] is not an IPv6 address'],
    [
      'api_listen=bad_host!:4001',
      'api_listen: "bad_host!:4001": "bad_host!" is not an IP address or host name',
    ],
    [
      'api_listen=300.1.1.1:4001',
      'api_listen: "300.1.1.1:4001": "300.1.1.1" is not an IP address or host name',
    ],
    [
      'services_listen=127.0.0.1:http',
      'services_listen: "127.0.0.1:http": port "http" is not a number from 1 to 65535',
    ],
    [
      'services_listen=::1:8080',
      'services_listen: "::1:8080" is not host:port: an IPv6 address must be in brackets ([::1]:PORT)',
    ],
    [
      'dashboard_listen=127.0.0.1:70000',
      'dashboard_listen: "127.0.0.1:70000": port "70000" is not a number from 1 to 65535',
    ],
  ])('%s', (line, want) => {
    expect(errorOf(fromFile(line)).message).toBe(`${FILE}:1: ${want}`);
  });

  it('accepts IPv4, host names and bracketed IPv6', () => {
    for (const ok of ['0.0.0.0:4001', 'm1.example.com:4001', '[::]:4001', '[fe80::1]:1', 'localhost:65535'])
      expect(checkListen(ok), ok).toBeUndefined();
    const { config } = loadConfig(noFile({ flags: { 'services-listen': '[::1]:8080' } }));
    expect(config.servicesListen).toBe('[::1]:8080');
  });

  it('a non-loopback services_listen names its source', () => {
    expect(errorOf(fromFile('services_listen=10.0.0.1:8080')).message).toMatch(
      new RegExp(`^${FILE}:1: services_listen: 10\\.0\\.0\\.1 is not a loopback address`),
    );
  });
});

describe('public_ip, etcd_key_prefix, metadata', () => {
  it.each([
    [
      'public_ip=not-an-ip',
      'public_ip: "not-an-ip" is not an IP address (IPv4 like 10.0.0.5 or IPv6; empty: detect it)',
    ],
    [
      'public_ip=10.0.0.256',
      'public_ip: "10.0.0.256" is not an IP address (IPv4 like 10.0.0.5 or IPv6; empty: detect it)',
    ],
    [
      'etcd_key_prefix=',
      'etcd_key_prefix: is empty: it would take the whole etcd keyspace; it must be a key directory starting with "/", e.g. /flotilla/',
    ],
    [
      'etcd_key_prefix=""',
      'etcd_key_prefix: is empty: it would take the whole etcd keyspace; it must be a key directory starting with "/", e.g. /flotilla/',
    ],
    [
      'etcd_key_prefix=/',
      'etcd_key_prefix: "/" would take the whole etcd keyspace; it must be a key directory starting with "/", e.g. /flotilla/',
    ],
    [
      'etcd_key_prefix=flotilla/',
      'etcd_key_prefix: "flotilla/" does not start with "/"; it must be a key directory starting with "/", e.g. /flotilla/',
    ],
    [
      'etcd_key_prefix=/a b/',
      'etcd_key_prefix: "/a b/" contains whitespace, a control character or "//"; it must be a key directory starting with "/", e.g. /flotilla/',
    ],
    ['metadata=region', 'metadata: "region" is not key=value (keys: letters, digits, _ . -)'],
    ['metadata=a=1,,b=2', 'metadata: "" is not key=value (keys: letters, digits, _ . -)'],
    ['metadata=a b=1', 'metadata: "a b=1" is not key=value (keys: letters, digits, _ . -)'],
    ['metadata=a=', 'metadata: "a=" is not key=value (keys: letters, digits, _ . -)'],
  ])('%s', (line, want) => {
    expect(errorOf(fromFile(line)).message).toBe(`${FILE}:1: ${want}`);
  });

  it('accepts IPv4/IPv6 public_ip, empty (detect), and adds the trailing "/" of a fleet.conf prefix', () => {
    const c = (body: string) => loadConfig(fromFile(body)).config;
    expect(c('public_ip=10.0.0.5').publicIp).toBe('10.0.0.5');
    expect(c('public_ip=fd00::5').publicIp).toBe('fd00::5');
    expect(c('public_ip=').publicIp).toBeUndefined();
    expect(c('etcd_key_prefix=/_coreos.com/fleet').etcdKeyPrefix).toBe('/_coreos.com/fleet/');
    expect(c('etcd_key_prefix=/flotilla/').etcdKeyPrefix).toBe('/flotilla/');
  });
});

describe('etcd credentials', () => {
  it('etcd_username/etcd_password are read (no longer ignored)', () => {
    const { config, ignored } = loadConfig(fromFile('etcd_username=root\netcd_password=pw'));
    expect(config.etcdUsername).toBe('root');
    expect(config.etcdPassword).toBe('pw');
    expect(ignored).toEqual([]);
    expect(errorOf(fromFile('etcd_password=pw')).message).toBe(
      `${FILE}:1: etcd_password: etcd_password is set without etcd_username`,
    );
  });

  it('a bad etcd_servers URL is shown without its password', () => {
    const msg = errorOf(fromFile('etcd_servers=ftp://root:S3cret@10.0.0.1:2379')).message;
    expect(msg).toBe(`${FILE}:1: etcd_servers: "ftp://root:***@10.0.0.1:2379": scheme must be http or https`);
    expect(msg).not.toContain('S3cret');
  });
});
