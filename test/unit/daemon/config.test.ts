import { describe, expect, it } from 'vitest';
import { DEFAULTS, loadConfig, parseDuration, parseMetadata } from '../../../src/daemon/config.js';
import { isCode } from '../../../src/lib/errors.js';

const files = (map: Record<string, string>) => (p: string) => {
  const v = map[p];
  if (v === undefined) throw Object.assign(new Error(`ENOENT: ${p}`), { code: 'ENOENT' });
  return v;
};

describe('agent config', () => {
  it('uses defaults when the default file is missing (embedded registry)', () => {
    const { config, file } = loadConfig({ env: {}, readFile: files({}) });
    expect(config).toEqual(DEFAULTS);
    expect(config.etcdServers).toEqual([]);
    expect(file).toBeUndefined();
  });

  it('reads an existing fleet.conf unchanged', () => {
    const conf = [
      '# fleet.conf',
      'etcd_servers=["http://10.213.0.11:2379","http://10.213.0.12:2379"]',
      'metadata="region=us-east,name=m1"',
      'agent_ttl="3s"',
      'engine_reconcile_interval=2.5',
      'public_ip=10.213.0.11',
      'disable_engine=true',
      'verbosity=1',
      'etcd_key_prefix=/_coreos.com/fleet/',
      'token_limit=50',
    ].join('\n');
    const { config, ignored } = loadConfig({
      env: {},
      readFile: files({ '/etc/flotilla/flotilla.conf': conf }),
    });
    expect(config.etcdServers).toEqual(['http://10.213.0.11:2379', 'http://10.213.0.12:2379']);
    expect(config.metadata).toEqual({ region: 'us-east', name: 'm1' });
    expect(config.agentTtl).toBe(3);
    expect(config.engineReconcileInterval).toBe(2.5);
    expect(config.publicIp).toBe('10.213.0.11');
    expect(config.disableEngine).toBe(true);
    expect(config.verbosity).toBe(1);
    expect(config.etcdKeyPrefix).toBe('/_coreos.com/fleet/');
    expect(ignored[0]).toMatch(/token_limit ignored/);
  });

  it('precedence: defaults < file < env (FLEET_ < FLOTILLA_) < flags', () => {
    const read = files({ '/c.conf': 'agent_ttl=10s\nmetadata=a=file\nverbosity=1' });
    const env = { FLEET_AGENT_TTL: '20s', FLOTILLA_AGENT_TTL: '25s', FLEET_METADATA: 'a=env' };
    const { config } = loadConfig({
      configFile: '/c.conf',
      env,
      readFile: read,
      flags: { 'agent-ttl': '3s' },
    });
    expect(config.agentTtl).toBe(3);
    expect(config.metadata).toEqual({ a: 'env' });
    expect(config.verbosity).toBe(1);
    expect(config.etcdServers).toEqual([]);
    const { config: c2 } = loadConfig({
      env: { FLOTILLA_ETCD_SERVERS: 'http://127.0.0.1:2379,http://127.0.0.1:22379' },
      readFile: files({}),
    });
    expect(c2.etcdServers).toHaveLength(2);
  });

  it.each([
    ['unknown key', 'etcd_servrs=http://x:2379', /flotilla\.conf:1: unknown key "etcd_servrs"/],
    ['bad duration', 'agent_ttl=soon', /flotilla\.conf:1: agent_ttl: "soon" is not a positive duration/],
    ['bad URL', 'etcd_servers=10.0.0.1:2379', /etcd_servers: .*scheme must be http or https|is not a URL/],
    ['bad bool', 'disable_engine=maybe', /disable_engine: "maybe" is not a boolean/],
    ['bad metadata', 'metadata=region', /metadata: "region" is not key=value/],
    ['section header', '[fleet]', /flotilla\.conf:1: sections are not supported/],
    ['no equals', 'agent_ttl', /flotilla\.conf:1: expected key=value/],
    ['relative path', 'units_directory=run/units', /units_directory: "run\/units" must be an absolute path/],
    ['cert without key', 'etcd_certfile=/etc/c.pem', /etcd_certfile and etcd_keyfile must be set together/],
    ['tcp without tls', 'api_listen=0.0.0.0:4001', /api_listen: a TCP listener requires/],
  ])('a bad file is a hard error naming the key: %s', (_, body, msg) => {
    let err: unknown;
    try {
      loadConfig({ env: {}, readFile: files({ '/etc/flotilla/flotilla.conf': body }) });
    } catch (e) {
      err = e;
    }
    expect(isCode(err, 'E_CONFIG')).toBe(true);
    expect((err as Error).message).toMatch(msg);
  });

  it('a missing --config file is fatal; a bad env value names the variable', () => {
    expect(() => loadConfig({ configFile: '/nope.conf', env: {}, readFile: files({}) })).toThrow(
      /config file \/nope\.conf/,
    );
    expect(() => loadConfig({ env: { FLOTILLA_AGENT_TTL: '-1s' }, readFile: files({}) })).toThrow(
      /FLOTILLA_AGENT_TTL: agent_ttl/,
    );
    expect(() => loadConfig({ env: {}, readFile: files({}), flags: { 'agent-tll': '3s' } })).toThrow(
      /--agent-tll: unknown key/,
    );
  });

  it('parses Go durations and fleet metadata', () => {
    expect(parseDuration('30s')).toBe(30);
    expect(parseDuration('1m30s')).toBe(90);
    expect(parseDuration('500ms')).toBe(0.5);
    expect(parseDuration('2')).toBe(2);
    expect(parseDuration('3x')).toBeUndefined();
    expect(parseMetadata(' region = eu , az=1, region=us ')).toEqual({ region: 'us', az: '1' });
  });
});
