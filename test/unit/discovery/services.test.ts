/** Service names, NAME:PORT specs, proxy listener specs and endpoint helpers (pure). */
import { describe, expect, it } from 'vitest';
import { isCode } from '../../../src/lib/errors.js';
import {
  endpointAddress,
  groupByService,
  isUsable,
  parseProxySpecs,
  parseServiceSpec,
  validateServiceName,
} from '../../../src/discovery/services.js';
import type { ServiceEndpointRecord } from '../../../src/registry/types.js';

function errorOf(fn: () => unknown): Error {
  try {
    fn();
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected an error');
}

describe('service names', () => {
  it.each(['database', 'db1', 'a', 'web-frontend', '0', 'x'.repeat(63)])('accepts %s', (n) => {
    expect(validateServiceName(n)).toBe(n);
  });
  it.each(['', 'Database', '-db', 'db-', 'db_1', 'db.x', 'db/x', 'x'.repeat(64), 'db 1', 'é'])(
    'refuses %j with E_SERVICE_SPEC naming the origin',
    (n) => {
      const err = errorOf(() => validateServiceName(n, 'label flotilla.service of container c1'));
      expect(isCode(err, 'E_SERVICE_SPEC')).toBe(true);
      expect(err.message).toContain('label flotilla.service of container c1');
      expect(err.message).toContain(JSON.stringify(n));
    },
  );
});

describe('parseServiceSpec', () => {
  it('reads NAME:PORT and lists of them, dropping duplicates', () => {
    expect(parseServiceSpec('database:5432')).toEqual([{ name: 'database', port: 5432 }]);
    expect(parseServiceSpec(' web:80 , admin:8080,web:80')).toEqual([
      { name: 'web', port: 80 },
      { name: 'admin', port: 8080 },
    ]);
    expect(parseServiceSpec('web:1,web:65535')).toHaveLength(2);
  });
  it.each([
    ['', 'empty service spec'],
    ['database', 'is not NAME:PORT'],
    [':5432', 'is not NAME:PORT'],
    ['database:', 'port must be'],
    ['database:0', 'port must be'],
    ['database:65536', 'port must be'],
    ['database:54x', 'port must be'],
    ['database:-1', 'port must be'],
    ['Data:1', 'invalid service name'],
    ['web:80,bad name:1', 'invalid service name'],
  ])('refuses %j (%s)', (text, why) => {
    const err = errorOf(() => parseServiceSpec(text, 'unit db.service [Container] Service='));
    expect(isCode(err, 'E_SERVICE_SPEC')).toBe(true);
    expect(err.message).toContain(why);
    expect(err.message).toContain('unit db.service [Container] Service=');
  });
});

describe('proxy listener specs', () => {
  it('reads NAME=HOST:PORT from arguments and comma lists', () => {
    expect(parseProxySpecs(['database=127.0.0.1:15432', 'web=[::1]:8080,api=localhost:0'], 'proxy')).toEqual([
      { service: 'database', host: '127.0.0.1', port: 15432 },
      { service: 'web', host: '::1', port: 8080 },
      { service: 'api', host: 'localhost', port: 0 },
    ]);
  });
  it.each([
    ['database', 'is not NAME=HOST:PORT'],
    ['database=127.0.0.1', 'is not NAME=HOST:PORT'],
    ['=127.0.0.1:1', 'is not NAME=HOST:PORT'],
    ['database=127.0.0.1:99999', 'is not NAME=HOST:PORT'],
    ['DB=127.0.0.1:1', 'invalid service name'],
    ['a=127.0.0.1:1,b=127.0.0.1:1', 'is used twice'],
  ])('refuses %j', (text, why) => {
    const err = errorOf(() => parseProxySpecs([text], 'proxy_services'));
    expect(isCode(err, 'E_SERVICE_SPEC')).toBe(true);
    expect(err.message).toContain(why);
    expect(err.message).toContain('proxy_services');
  });
});

describe('addresses', () => {
  it('formats endpoints, bracketing IPv6', () => {
    expect(endpointAddress({ ip: '10.214.0.12', port: 5432 })).toBe('10.214.0.12:5432');
    expect(endpointAddress({ ip: 'fd00::1', port: 80 })).toBe('[fd00::1]:80');
  });
  it('only none and healthy endpoints get traffic', () => {
    expect(isUsable('none')).toBe(true);
    expect(isUsable('healthy')).toBe(true);
    expect(isUsable('starting')).toBe(false);
  });
});

describe('groupByService', () => {
  it('groups and orders by service, machine, port', () => {
    const rec = (service: string, machineID: string, port: number): ServiceEndpointRecord => ({
      service,
      machineID,
      ip: '10.0.0.1',
      port,
      container: 'c',
      health: 'none',
      registered: 0,
    });
    const g = groupByService([
      rec('web', 'm2', 80),
      rec('db', 'm1', 5432),
      rec('web', 'm1', 81),
      rec('web', 'm1', 80),
    ]);
    expect([...g.keys()]).toEqual(['db', 'web']);
    expect(g.get('web')!.map((r) => `${r.machineID}:${r.port}`)).toEqual(['m1:80', 'm1:81', 'm2:80']);
  });
});
