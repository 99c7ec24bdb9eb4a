import { describe, expect, it } from 'vitest';
import { certRoles, refusal } from '../../../src/api/roles.js';

describe('certRoles', () => {
  it('reads SAN URIs and subject OUs, ignoring unknown roles and other SANs', () => {
    expect([
      ...certRoles({
        subject: { CN: 'a' },
        subjectaltname: 'IP Address:10.0.0.1, URI:urn:flotilla:role:agent, URI:urn:flotilla:role:root',
      }),
    ]).toEqual(['agent']);
    expect([...certRoles({ subject: { CN: 'v', OU: 'viewer' } })]).toEqual(['viewer']);
    expect([...certRoles({ subject: { CN: 'v', OU: ['ops', 'operator'] } })]).toEqual(['operator']);
    expect(certRoles({ subject: { CN: 'x' }, subjectaltname: 'DNS:operator' }).size).toBe(0);
    expect(certRoles(undefined).size).toBe(0);
  });
});

describe('refusal', () => {
  it('operator may do anything, viewer/agent only read, no role nothing', () => {
    expect(refusal(new Set(['operator']), 'DELETE')).toBeUndefined();
    expect(refusal(new Set(['viewer']), 'GET')).toBeUndefined();
    expect(refusal(new Set(['agent']), 'HEAD')).toBeUndefined();
    expect(refusal(new Set(['viewer']), 'PATCH')).toMatch(/PATCH needs the operator role/);
    expect(refusal(new Set(['agent']), 'PUT')).toMatch(/may only read/);
    expect(refusal(new Set(), 'GET')).toMatch(/no flotilla role/);
  });

  it('the batch get is a read (POST only for its body); the batch writes are not', () => {
    expect(refusal(new Set(['viewer']), 'POST', '/flotilla/v1/units/get')).toBeUndefined();
    expect(refusal(new Set(['viewer']), 'POST', '/flotilla/v1/units/put')).toMatch(/needs the operator role/);
    expect(refusal(new Set(['agent']), 'POST', '/flotilla/v1/units/destroy')).toMatch(/may only read/);
    expect(refusal(new Set(), 'POST', '/flotilla/v1/units/get')).toMatch(/no flotilla role/);
  });
});
