import { afterEach, describe, expect, it } from 'vitest';
import { isCode } from '../../../src/lib/errors.js';
import { cmp, op } from '../../../src/registry/kv.js';
import { FakeClock, take, tempStores } from './embedded-support.js';

const t = tempStores();
afterEach(() => t.cleanup());

async function fresh(opts: Parameters<typeof t.open>[1] = {}) {
  return t.open(await t.dir(), opts);
}

async function rejectsWith(p: Promise<unknown>, code: string): Promise<Record<string, unknown>> {
  const err: unknown = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err, `expected ${code}`).toBeDefined();
  expect((err as { code?: string }).code).toBe(code);
  return (err as { details: Record<string, unknown> }).details;
}

describe('embedded KvStore: revisions', () => {
  it('counts one revision per write and tracks create/mod/version per key', async () => {
    const s = await fresh();
    expect(s.backend).toBe('embedded');
    expect(await s.revision()).toBe(0);
    expect(await s.put('a', '1')).toEqual({ revision: 1 });
    expect(await s.put('b', '1')).toEqual({ revision: 2 });
    expect(await s.put('a', '2')).toEqual({ revision: 3 });
    expect(await s.get('a')).toEqual({
      key: 'a',
      value: '2',
      createRevision: 1,
      modRevision: 3,
      version: 2,
      lease: '0',
    });
    expect(await s.delete('a')).toEqual({ revision: 4, deleted: 1 });
    expect(await s.get('a')).toBeUndefined();
    // A delete that deletes nothing is not a write.
    expect(await s.delete('a')).toEqual({ revision: 4, deleted: 0 });
    // Re-creating starts a new life: new createRevision, version 1.
    await s.put('a', '3');
    expect(await s.get('a')).toMatchObject({ createRevision: 5, modRevision: 5, version: 1 });
    expect(await s.revision()).toBe(5);
  });

  it('gives every key written by one txn the same revision; a read-only txn writes nothing', async () => {
    const s = await fresh();
    await s.put('x/0', 'old');
    const r = await s.txn({ compare: [], success: [op.put('x/1', 'a'), op.put('x/2', 'b'), op.del('x/0')] });
    expect(r).toMatchObject({ succeeded: true, revision: 2 });
    expect(r.results).toEqual([{ type: 'put' }, { type: 'put' }, { type: 'delete', deleted: 1 }]);
    const { kvs, revision } = await s.range('x/');
    expect(revision).toBe(2);
    expect(kvs.map((kv) => [kv.key, kv.modRevision])).toEqual([
      ['x/1', 2],
      ['x/2', 2],
    ]);
    const ro = await s.txn({ compare: [], success: [op.get('x/', true)] });
    expect(ro.revision).toBe(2);
    expect(await s.revision()).toBe(2);
  });

  it('ranges by prefix in UTF-8 byte order, with a limit', async () => {
    const s = await fresh();
    // '\u{1F600}' (4 UTF-8 bytes, a surrogate pair in UTF-16) sorts after '\uFFFD' in etcd.
    for (const k of ['p/b', 'p/a', 'p/\u{1F600}', 'p/\uFFFD', 'p/ab', 'q/a', 'p']) await s.put(k, k);
    const all = await s.range('p/');
    expect(all.kvs.map((kv) => kv.key)).toEqual(['p/a', 'p/ab', 'p/b', 'p/\uFFFD', 'p/\u{1F600}']);
    expect((await s.range('p/', { limit: 2 })).kvs.map((kv) => kv.key)).toEqual(['p/a', 'p/ab']);
    expect((await s.range('')).kvs).toHaveLength(7);
    expect(await s.delete('p/', { prefix: true })).toEqual({ revision: 8, deleted: 5 });
    expect((await s.range('p')).kvs.map((kv) => kv.key)).toEqual(['p']);
  });
});

describe('embedded KvStore: txn', () => {
  it('evaluates compares on value, version, create, mod and lease', async () => {
    const s = await fresh();
    await s.put('k', 'v1');
    await s.put('k', 'v2'); // create 1, mod 2, version 2
    const ok = async (...compare: Parameters<typeof s.txn>[0]['compare']) =>
      (await s.txn({ compare, success: [] })).succeeded;
    expect(await ok(cmp.value('k', 'v2'))).toBe(true);
    expect(await ok({ key: 'k', target: 'value', op: '>', value: 'v1' })).toBe(true);
    expect(await ok({ key: 'k', target: 'value', op: '<', value: 'v1' })).toBe(false);
    expect(await ok({ key: 'k', target: 'version', op: '=', value: 2 })).toBe(true);
    expect(await ok({ key: 'k', target: 'create', op: '=', value: 1 })).toBe(true);
    expect(await ok(cmp.modRev('k', 2))).toBe(true);
    expect(await ok({ key: 'k', target: 'mod', op: '<', value: 2 })).toBe(false);
    expect(await ok({ key: 'k', target: 'lease', op: '=', value: '0' })).toBe(true);
    expect(await ok(cmp.present('k'), cmp.absent('nope'))).toBe(true);
    expect(await ok(cmp.present('k'), cmp.present('nope'))).toBe(false);
    // A missing key: version/create/mod are 0, any value compare is false, lease is '0'.
    expect(await ok(cmp.modRev('nope', 0))).toBe(true);
    expect(await ok(cmp.value('nope', ''))).toBe(false);
    expect(await ok({ key: 'nope', target: 'value', op: '!=', value: 'x' })).toBe(false);
    expect(await ok({ key: 'nope', target: 'lease', op: '=', value: '0' })).toBe(true);
  });

  it('runs the failure branch when a compare fails, and gets see earlier ops of the txn', async () => {
    const s = await fresh();
    await s.put('lock', 'me');
    const r = await s.txn({
      compare: [cmp.absent('lock')],
      success: [op.put('lock', 'you')],
      failure: [op.put('other', 'x'), op.get('other'), op.get('lock')],
    });
    expect(r.succeeded).toBe(false);
    expect(r.revision).toBe(2);
    expect(r.results[1]).toEqual({
      type: 'get',
      kvs: [{ key: 'other', value: 'x', createRevision: 2, modRevision: 2, version: 1, lease: '0' }],
    });
    expect(r.results[2]).toMatchObject({ type: 'get', kvs: [{ key: 'lock', value: 'me' }] });
  });

  it('is atomic: a put with an unknown lease fails the whole txn and writes nothing', async () => {
    const s = await fresh();
    await s.put('a', '1');
    const details = await rejectsWith(
      s.txn({ compare: [], success: [op.put('a', '2'), op.put('b', '1', '12345')] }),
      'E_LEASE_NOT_FOUND',
    );
    expect(details).toEqual({ lease: '12345' });
    await rejectsWith(s.put('c', '1', { lease: '777' }), 'E_LEASE_NOT_FOUND');
    expect(await s.get('a')).toMatchObject({ value: '1', version: 1 });
    expect(await s.get('b')).toBeUndefined();
    expect(await s.revision()).toBe(1);
  });

  it('rejects a txn that puts a key twice or puts inside a deleted range, as etcd does', async () => {
    const s = await fresh();
    await rejectsWith(
      s.txn({ compare: [], success: [op.put('a', '1'), op.put('a', '2')] }),
      'E_INVALID_REQUEST',
    );
    await rejectsWith(
      s.txn({ compare: [], success: [op.del('d/', true), op.put('d/x', '1')] }),
      'E_INVALID_REQUEST',
    );
    // Overlapping deletes are fine.
    expect((await s.txn({ compare: [], success: [op.del('d/', true), op.del('d/x')] })).succeeded).toBe(true);
    expect(await s.revision()).toBe(0);
  });
});

describe('embedded KvStore: leases', () => {
  it('grants, keeps alive and expires leases by the injected clock, one revision per expired lease', async () => {
    const clock = new FakeClock();
    const s = await fresh({ clock });
    const l = await s.grantLease(10);
    expect(l.ttl).toBe(10);
    expect(l.id).toMatch(/^[1-9]\d*$/);
    await s.put('m/1', 'a', { lease: l.id });
    await s.put('m/2', 'b', { lease: l.id });
    await s.put('other', 'c');
    expect((await s.get('m/1'))?.lease).toBe(l.id);
    const w = s.watch('', { prevKv: true });

    clock.advance(6000);
    expect(await s.leaseTimeToLive(l.id)).toBe(4);
    expect(await s.keepAliveOnce(l.id)).toBe(10);
    expect(await s.leaseTimeToLive(l.id)).toBe(10);
    clock.advance(9999);
    await s.expireLeases();
    expect(await s.get('m/1')).toBeDefined();

    clock.advance(1);
    await s.expireLeases();
    expect(await s.get('m/1')).toBeUndefined();
    expect(await s.get('other')).toBeDefined();
    expect(await s.revision()).toBe(4);
    const [batch] = await take(w, 1);
    expect(batch).toEqual({
      revision: 4,
      events: [
        {
          type: 'delete',
          kv: { key: 'm/1', value: '', createRevision: 0, modRevision: 4, version: 0, lease: '0' },
          prevKv: { key: 'm/1', value: 'a', createRevision: 1, modRevision: 1, version: 1, lease: l.id },
        },
        {
          type: 'delete',
          kv: { key: 'm/2', value: '', createRevision: 0, modRevision: 4, version: 0, lease: '0' },
          prevKv: { key: 'm/2', value: 'b', createRevision: 2, modRevision: 2, version: 1, lease: l.id },
        },
      ],
    });
    expect(await s.leaseTimeToLive(l.id)).toBeUndefined();
    await rejectsWith(s.keepAliveOnce(l.id), 'E_LEASE_NOT_FOUND');
    await rejectsWith(s.put('m/3', 'x', { lease: l.id }), 'E_LEASE_NOT_FOUND');
    w.close();
  });

  it('never uses a lease past its deadline, even before the timer fires', async () => {
    const clock = new FakeClock();
    const s = await fresh({ clock });
    const l = await s.grantLease(5);
    await s.put('k', 'v', { lease: l.id });
    clock.advance(5000);
    await rejectsWith(s.keepAliveOnce(l.id), 'E_LEASE_NOT_FOUND');
    expect(await s.get('k')).toBeUndefined();
  });

  it('revokes: keys deleted in one revision; a lease without keys makes no revision', async () => {
    const s = await fresh();
    const empty = await s.grantLease(60);
    await s.revokeLease(empty.id);
    expect(await s.revision()).toBe(0);
    await rejectsWith(s.revokeLease(empty.id), 'E_LEASE_NOT_FOUND');

    const l = await s.grantLease(60);
    await s.put('a', '1', { lease: l.id });
    await s.put('b', '1', { lease: l.id });
    await s.put('b', '2'); // a put without the lease detaches the key
    await s.revokeLease(l.id);
    expect(await s.get('a')).toBeUndefined();
    expect(await s.get('b')).toMatchObject({ value: '2', lease: '0' });
    expect(await s.revision()).toBe(4);
  });

  it('expires leases from the timer with the real clock', async () => {
    const s = await fresh();
    const l = await s.grantLease(1);
    await s.put('k', 'v', { lease: l.id });
    const w = s.watch('k');
    const [batch] = await take(w, 1, 3000);
    expect(batch?.events.map((e) => e.type)).toEqual(['delete']);
    expect(await s.leaseTimeToLive(l.id)).toBeUndefined();
  });

  it('gives every lease a fresh full TTL after a restart', async () => {
    const dir = await t.dir();
    const clock = new FakeClock();
    const s1 = await t.open(dir, { clock });
    const l = await s1.grantLease(30);
    await s1.put('k', 'v', { lease: l.id });
    clock.advance(29_000);
    expect(await s1.leaseTimeToLive(l.id)).toBe(1);
    await s1.close();
    const s2 = await t.open(dir, { clock });
    expect(await s2.leaseTimeToLive(l.id)).toBe(30);
    expect(await s2.get('k')).toMatchObject({ lease: l.id });
    clock.advance(30_000);
    await s2.expireLeases();
    expect(await s2.get('k')).toBeUndefined();
  });
});

describe('embedded KvStore: watches', () => {
  it('delivers changes under a prefix grouped by revision, from now or from a revision', async () => {
    const s = await fresh();
    await s.put('u/a', '1'); // 1
    await s.put('v/a', '1'); // 2
    const live = s.watch('u/', { prevKv: true });
    await s.txn({ compare: [], success: [op.put('u/a', '2'), op.put('u/b', '1'), op.put('v/b', '1')] }); // 3
    await s.put('v/c', '1'); // 4 (not under u/)
    await s.delete('u/', { prefix: true }); // 5
    const got = await take(live, 2);
    expect(got.map((b) => [b.revision, b.events.map((e) => `${e.type}:${e.kv.key}`)])).toEqual([
      [3, ['put:u/a', 'put:u/b']],
      [5, ['delete:u/a', 'delete:u/b']],
    ]);
    expect(got[0]?.events[0]?.prevKv).toMatchObject({ value: '1', modRevision: 1 });
    expect(got[0]?.events[1]?.prevKv).toBeUndefined();

    // Resume from revision 2: includes the changes made at 2.
    const resumed = s.watch('', { fromRevision: 2 });
    const again = await take(resumed, 4);
    expect(again.map((b) => b.revision)).toEqual([2, 3, 4, 5]);
    expect(again[0]?.events[0]?.prevKv).toBeUndefined(); // prevKv not asked for
    // Future revisions keep coming on a resumed watch.
    await s.put('z', '1');
    expect((await take(resumed, 1))[0]?.revision).toBe(6);
    live.close();
    resumed.close();
  });

  it('ends with E_REGISTRY_COMPACTED when the history before fromRevision is gone', async () => {
    const s = await fresh({ historyRevisions: 5 });
    for (let i = 0; i < 12; i++) await s.put(`k${i}`, 'v'); // revisions 1..12; kept 8..12
    const ok = s.watch('', { fromRevision: 8 });
    expect((await take(ok, 5)).map((b) => b.revision)).toEqual([8, 9, 10, 11, 12]);
    ok.close();
    const old = s.watch('', { fromRevision: 7 });
    const err = await old[Symbol.asyncIterator]()
      .next()
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(isCode(err, 'E_REGISTRY_COMPACTED')).toBe(true);
    expect((err as { details: unknown }).details).toMatchObject({ compactRevision: 7 });
  });

  it('compactHistory() drops the history before a revision, as etcd Compact does', async () => {
    const s = await fresh();
    for (let i = 0; i < 6; i++) await s.put(`k${i}`, 'v');
    await s.compactHistory(4);
    const ok = s.watch('', { fromRevision: 4 });
    expect((await take(ok, 3)).map((b) => b.revision)).toEqual([4, 5, 6]);
    ok.close();
    const old = s.watch('', { fromRevision: 3 })[Symbol.asyncIterator]();
    const err = await old.next().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(isCode(err, 'E_REGISTRY_COMPACTED')).toBe(true);
    expect((err as { details: unknown }).details).toMatchObject({ compactRevision: 3, revision: 3 });
    await s.compactHistory(100); // past the end: everything so far, and later revisions still come
    const later = s.watch('');
    await s.put('k', 'v');
    expect((await take(later, 1))[0]?.revision).toBe(7);
  });

  it('resumes across a restart from the log (history starts after the last snapshot)', async () => {
    const dir = await t.dir();
    const s1 = await t.open(dir);
    for (let i = 0; i < 5; i++) await s1.put(`k${i}`, 'v');
    await s1.close();
    const s2 = await t.open(dir);
    const w = s2.watch('', { fromRevision: 3 });
    expect((await take(w, 3)).map((b) => b.revision)).toEqual([3, 4, 5]);
    w.close();
  });

  it('stops iterating on close(), on break, and when the store closes', async () => {
    const s = await fresh();
    const a = s.watch('');
    const b = s.watch('');
    await s.put('k', 'v');
    for await (const batch of b) {
      expect(batch.revision).toBe(1);
      break;
    }
    a.close();
    const rest: number[] = [];
    for await (const batch of a) rest.push(batch.revision); // the queued batch, then the end
    expect(rest).toEqual([1]);
    const c = s.watch('');
    await s.close();
    expect(await c[Symbol.asyncIterator]().next()).toEqual({ value: undefined, done: true });
    await rejectsWith(s.get('k'), 'E_CLOSED');
  });
});

describe('embedded KvStore: the data directory', () => {
  it('refuses a second open of the same directory, naming the directory and the holder', async () => {
    const dir = await t.dir();
    await t.open(dir);
    const err = await t.open(dir).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(isCode(err, 'E_REGISTRY_UNAVAILABLE')).toBe(true);
    expect((err as Error).message).toContain(dir);
    expect((err as Error).message).toContain(String(process.pid));
    expect((err as { details: unknown }).details).toMatchObject({ dataDir: dir, pid: process.pid });
  });

  it('constructs lazily too: requests wait for the open', async () => {
    const dir = await t.dir();
    const { EmbeddedKvStore } = await import('../../../src/registry/embedded/index.js');
    const s = new EmbeddedKvStore({ dataDir: dir });
    const w = s.watch('');
    await s.put('k', 'v');
    expect((await take(w, 1))[0]?.revision).toBe(1);
    await s.close();
  });
});
