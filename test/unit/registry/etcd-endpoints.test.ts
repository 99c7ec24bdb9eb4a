import { describe, expect, it } from 'vitest';
import { EtcdKvStore, parseEndpoints, redactUrl } from '../../../src/registry/etcd.js';

describe('parseEndpoints', () => {
  it('splits hosts and the scheme', () => {
    expect(parseEndpoints(['https://10.0.0.1:2379', 'https://[::1]:2379'])).toEqual({
      hosts: ['10.0.0.1:2379', '[::1]:2379'],
      tls: true,
    });
    expect(parseEndpoints(['http://127.0.0.1:2379'])).toEqual({ hosts: ['127.0.0.1:2379'], tls: false });
  });

  it('refuses a mix of http and https, naming etcd_servers', () => {
    expect(() => parseEndpoints(['https://a:2379', 'http://b:2379'])).toThrow(
      /etcd_servers: a mix of http:\/\/ and https:\/\//,
    );
  });

  it('takes URL credentials off the host, decoded, and never quotes the password in errors', () => {
    expect(
      parseEndpoints(['http://root:p%40ss@127.0.0.1:2379', 'http://root:p%40ss@127.0.0.2:2379']),
    ).toEqual({
      hosts: ['127.0.0.1:2379', '127.0.0.2:2379'],
      tls: false,
      username: 'root',
      password: 'p@ss',
    });
    let msg = '';
    try {
      parseEndpoints(['http://root:hunter2@a:2379', 'http://root:other@b:2379']);
    } catch (err) {
      msg = (err as Error).message;
    }
    expect(msg).toMatch(/different credentials/);
    expect(msg).not.toContain('hunter2');
    expect(msg).not.toContain('other');
    expect(() => parseEndpoints(['ftp://root:hunter2@a'])).toThrow(/scheme/);
    try {
      parseEndpoints(['ftp://root:hunter2@a']);
    } catch (err) {
      expect((err as Error).message).not.toContain('hunter2');
    }
    expect(() => parseEndpoints(['http://:pw@a:2379'])).toThrow(/a password without a user name/);
  });
});

describe('redactUrl', () => {
  it('replaces the password only', () => {
    expect(redactUrl('http://root:hunter2@127.0.0.1:2379')).toBe('http://root:***@127.0.0.1:2379');
    expect(redactUrl('http://127.0.0.1:2379')).toBe('http://127.0.0.1:2379');
    expect(redactUrl('not a url //u:secret@x')).toBe('not a url //u:***@x');
  });
});

describe('EtcdKvStore config', () => {
  it('refuses TLS files with http:// endpoints (TLS is chosen by the scheme)', () => {
    expect(() => new EtcdKvStore({ endpoints: ['http://127.0.0.1:2379'], caFile: '/etc/hostname' })).toThrow(
      /use https:\/\//,
    );
  });

  it('refuses etcd_password without etcd_username, and credentials that disagree with the URL', () => {
    expect(() => new EtcdKvStore({ endpoints: ['http://127.0.0.1:2379'], password: 'x' })).toThrow(
      /etcd_password is set without etcd_username/,
    );
    expect(
      () => new EtcdKvStore({ endpoints: ['http://alice:x@127.0.0.1:2379'], username: 'bob', password: 'x' }),
    ).toThrow(/differ from etcd_username/);
  });
});
