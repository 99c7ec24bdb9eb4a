/** The agent's discovery keys: services_listen, proxy_services, proxy_drain_timeout. */
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../../src/daemon/config.js';
import { isCode } from '../../../src/lib/errors.js';

const conf = (body: string) =>
  loadConfig({
    env: {},
    readFile: (p) => {
      if (p === '/etc/flotilla/flotilla.conf') return body;
      throw Object.assign(new Error(`ENOENT: ${p}`), { code: 'ENOENT' });
    },
  }).config;

describe('discovery config keys', () => {
  it('are off by default, with a 30 s drain', () => {
    const c = conf('');
    expect(c.servicesListen).toBeUndefined();
    expect(c.proxyServices).toBeUndefined();
    expect(c.proxyDrainTimeout).toBe(30);
  });

  it('read from the file, the environment and flags', () => {
    const c = conf(
      'services_listen=127.0.0.1:4001\nproxy_services=database=127.0.0.1:15432,web=[::1]:8080\nproxy_drain_timeout=5s\n',
    );
    expect(c).toMatchObject({
      servicesListen: '127.0.0.1:4001',
      proxyServices: 'database=127.0.0.1:15432,web=[::1]:8080',
      proxyDrainTimeout: 5,
    });
    const e = loadConfig({ env: { FLOTILLA_SERVICES_LISTEN: '[::1]:4001' }, readFile: () => '' }).config;
    expect(e.servicesListen).toBe('[::1]:4001');
    const f = loadConfig({
      env: {},
      readFile: () => '',
      flags: { 'proxy-services': 'db=127.0.0.1:1' },
    }).config;
    expect(f.proxyServices).toBe('db=127.0.0.1:1');
  });

  it.each([
    ['services_listen=0.0.0.0:4001', /services_listen: 0\.0\.0\.0 is not a loopback address/],
    ['services_listen=10.214.0.11:4001', /services_listen: 10\.214\.0\.11 is not a loopback address/],
    ['services_listen=4001', /services_listen: "4001" is not host:port/],
    ['proxy_services=database', /proxy_services: "database" is not NAME=HOST:PORT/],
    ['proxy_services=Data=127.0.0.1:1', /proxy_services: .*invalid service name "Data"/],
    ['proxy_drain_timeout=never', /proxy_drain_timeout: "never" is not a positive duration/],
  ])('refuses %s with E_CONFIG naming the key', (body, msg) => {
    let err: unknown;
    try {
      conf(body);
    } catch (e) {
      err = e;
    }
    expect(isCode(err, 'E_CONFIG')).toBe(true);
    expect((err as Error).message).toMatch(msg);
  });
});

describe('proxy_mode and what a reload applies', () => {
  it('proxy_mode is auto by default; a bad value names the key', () => {
    expect(conf('').proxyMode).toBe('auto');
    expect(conf('proxy_mode=kernel\n').proxyMode).toBe('kernel');
    let msg = '';
    try {
      conf('proxy_mode=fast\n');
    } catch (e) {
      msg = (e as Error).message;
    }
    expect(msg).toMatch(/proxy_mode.*"fast" is not one of auto, kernel, userspace/);
  });

  it('restartOnlyChanges names changed keys other than metadata, verbosity and the proxy ones', async () => {
    const { restartOnlyChanges } = await import('../../../src/daemon/lifecycle.js');
    const a = conf('agent_ttl=30s\nmetadata=role=a\nproxy_mode=auto\n');
    const b = conf('agent_ttl=45s\nmetadata=role=b\nproxy_mode=userspace\nverbosity=1\npublic_ip=10.0.0.9\n');
    expect(restartOnlyChanges(a, b)).toEqual(['public_ip', 'agent_ttl']);
    expect(restartOnlyChanges(a, a)).toEqual([]);
  });
});
