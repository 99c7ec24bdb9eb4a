/** Address helpers (pure): host:port parsing and the loopback test. */
import { describe, expect, it } from 'vitest';
import { isLoopbackHost, parseHostPort } from '../../../src/lib/net.js';

describe('addresses', () => {
  it('parses host:port and [v6]:port', () => {
    expect(parseHostPort('127.0.0.1:4001')).toEqual({ host: '127.0.0.1', port: 4001 });
    expect(parseHostPort('[::1]:4001')).toEqual({ host: '::1', port: 4001 });
    expect(parseHostPort('::1:4001')).toBeUndefined();
    expect(parseHostPort('127.0.0.1')).toBeUndefined();
    expect(parseHostPort('127.0.0.1:70000')).toBeUndefined();
  });
  it('knows loopback', () => {
    for (const h of ['127.0.0.1', '127.1.2.3', '::1', 'localhost']) expect(isLoopbackHost(h)).toBe(true);
    for (const h of ['0.0.0.0', '10.214.0.11', '128.0.0.1', '127.0.0.256', '::', 'example'])
      expect(isLoopbackHost(h)).toBe(false);
  });
});
