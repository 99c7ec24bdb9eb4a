import { describe, expect, it } from 'vitest';
import { extraEndpoints } from '../../../src/registry/etcd-members.js';

const members = [
  { clientURLs: ['http://10.0.0.11:2379'] },
  { clientURLs: ['http://10.0.0.12:2379', 'https://10.0.0.12:2379'] },
  { clientURLs: ['http://10.0.0.13:2379'] },
];

describe('extraEndpoints (etcd member list as fallback endpoints)', () => {
  it('local member only: the other members, without this machine’s own member', () => {
    expect(extraEndpoints(['http://127.0.0.1:2379'], members, new Set(['10.0.0.13']))).toEqual([
      'http://10.0.0.11:2379',
      'http://10.0.0.12:2379',
    ]);
  });
  it('all members listed: nothing to add; another scheme is never taken', () => {
    const all = members.map((m) => m.clientURLs[0]!);
    expect(extraEndpoints(all, members, new Set())).toEqual([]);
    expect(extraEndpoints(['https://10.0.0.11:2379'], members, new Set())).toEqual([
      'https://10.0.0.12:2379',
    ]);
  });
  it('a remote endpoint configured: this machine’s member is kept as a fallback', () => {
    expect(extraEndpoints(['http://10.0.0.11:2379'], members, new Set(['10.0.0.13']))).toEqual([
      'http://10.0.0.12:2379',
      'http://10.0.0.13:2379',
    ]);
  });
});
