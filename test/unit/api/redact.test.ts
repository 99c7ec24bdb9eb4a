import { describe, expect, it } from 'vitest';
import { maySeeSecrets, optionsFor, redactEnvironment } from '../../../src/api/redact.js';
import type { Role } from '../../../src/api/roles.js';

describe('redaction of Environment= for read-only roles', () => {
  it('keeps variable names, drops every value, also quoted and escaped ones', () => {
    expect(redactEnvironment('A=1 "B=two words" C=x\\ y')).toBe('A=<redacted> B=<redacted> C=<redacted>');
    expect(redactEnvironment('NOEQ')).toBe('<redacted>');
    expect(redactEnvironment('BROKEN="unterminated')).toBe('<redacted>');
    expect(redactEnvironment('1BAD=x')).toBe('<redacted>');
  });
  it('only the operator (or an in-process call) sees values', () => {
    const r = (...x: Role[]) => new Set<Role>(x);
    expect(maySeeSecrets(r('operator'))).toBe(true);
    expect(maySeeSecrets(undefined)).toBe(true);
    expect(maySeeSecrets(r('viewer'))).toBe(false);
    expect(maySeeSecrets(r('agent'))).toBe(false);
    const opts = [
      { section: 'Service', name: 'ExecStart', value: '/bin/true' },
      { section: 'Container', name: 'Environment', value: 'K=v' },
    ];
    expect(optionsFor(opts, r('viewer'))).toEqual([
      opts[0],
      { section: 'Container', name: 'Environment', value: 'K=<redacted>' },
    ]);
    expect(opts[1]!.value).toBe('K=v');
    expect(optionsFor(opts, r('operator'))).toBe(opts);
  });
});
