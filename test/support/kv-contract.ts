/**
 * The registry contract suite: the same tests, unchanged, against every KvStore backend (embedded,
 * a real single-member etcd, a real 3-member etcd cluster). It checks the contract written in
 * src/registry/kv.ts and the typed Registry on top of it.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { isCode } from '../../src/lib/errors.js';
import { cmp, op, type KvStore, type WatchBatch } from '../../src/registry/kv.js';
import { Registry, sha1 } from '../../src/registry/registry.js';

export interface ContractTarget {
  /** A fresh store with an empty key space (e.g. a unique etcd prefix, or a new data dir). */
  open(): Promise<KvStore>;
  /** Compact history up to `revision` (etcd: the Compact RPC), if the backend can be told to. */
  compact?(store: KvStore, revision: number): Promise<void>;
  /** Kill -9 member `i` (1-based) of a multi-member cluster, and bring it back. */
  members?: { count: number; kill(i: number): void; restart(): void };
}

/** Collect watch batches in the background until `until` says stop or the timeout passes. */
export function collect(
  it: AsyncIterable<WatchBatch>,
  until: (all: WatchBatch[]) => boolean,
  timeoutMs = 10_000,
): Promise<WatchBatch[]> {
  const all: WatchBatch[] = [];
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () =>
        reject(new Error(`watch: timed out after ${timeoutMs} ms with ${JSON.stringify(all).slice(0, 500)}`)),
      timeoutMs,
    );
    void (async () => {
      try {
        for await (const b of it) {
          all.push(b);
          if (until(all)) break;
        }
        clearTimeout(timer);
        resolve(all);
      } catch (err) {
        clearTimeout(timer);
        reject(err instanceof Error ? err : new Error(String(err)));
      }
    })();
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export function kvContract(name: string, target: ContractTarget): void {
  describe(`KvStore contract: ${name}`, () => {
    let store: KvStore;
    const extra: KvStore[] = [];

    beforeAll(async () => {
      store = await target.open();
    });
    afterAll(async () => {
      await store?.close();
    });
    afterEach(async () => {
      for (const s of extra.splice(0)) await s.close();
    });

    const k = (s: string) => `${randomUUID().slice(0, 8)}/${s}`;

    it('put/get keeps create/mod revision and version', async () => {
      const key = k('a');
      const r1 = await store.put(key, 'v1');
      const r2 = await store.put(key, 'v2');
      expect(r2.revision).toBe(r1.revision + 1);
      const kv = await store.get(key);
      expect(kv).toMatchObject({
        key,
        value: 'v2',
        createRevision: r1.revision,
        modRevision: r2.revision,
        version: 2,
      });
      expect(kv?.lease).toBe('0');
      expect(await store.revision()).toBeGreaterThanOrEqual(r2.revision);
    });

    it('keeps unicode keys and values byte for byte', async () => {
      const key = k('ünï/cødé ☃');
      await store.put(key, 'välue "quoted" \\ \n line');
      expect((await store.get(key))?.value).toBe('välue "quoted" \\ \n line');
    });

    it('range returns a sorted prefix with its read revision, honouring limit', async () => {
      const p = k('');
      for (const n of ['c', 'a', 'b']) await store.put(`${p}${n}`, n);
      await store.put(`${p.slice(0, -1)}x`, 'outside'); // same stem, outside the prefix
      const res = await store.range(p);
      expect(res.kvs.map((kv) => kv.key)).toEqual([`${p}a`, `${p}b`, `${p}c`]);
      expect(res.revision).toBeGreaterThanOrEqual(Math.max(...res.kvs.map((kv) => kv.modRevision)));
      expect((await store.range(p, { limit: 2 })).kvs).toHaveLength(2);
    });

    it('delete reports what it deleted; a prefix delete is one revision', async () => {
      const p = k('');
      await store.put(`${p}1`, '1');
      await store.put(`${p}2`, '2');
      const before = await store.revision();
      const d = await store.delete(p, { prefix: true });
      expect(d).toEqual({ deleted: 2, revision: before + 1 });
      expect(await store.get(`${p}1`)).toBeUndefined();
      expect((await store.delete(`${p}1`)).deleted).toBe(0);
    });

    it('txn applies success ops atomically at one revision', async () => {
      const a = k('a');
      const b = k('b');
      const res = await store.txn({
        compare: [cmp.absent(a), cmp.absent(b)],
        success: [op.put(a, '1'), op.put(b, '2'), op.get(a)],
      });
      expect(res.succeeded).toBe(true);
      const [ka, kb] = [await store.get(a), await store.get(b)];
      expect(ka?.modRevision).toBe(res.revision);
      expect(kb?.modRevision).toBe(res.revision);
      expect(res.results[2]).toMatchObject({ type: 'get', kvs: [{ key: a, value: '1' }] });
    });

    it('txn takes the failure branch and writes nothing of success', async () => {
      const a = k('a');
      const b = k('b');
      await store.put(a, 'x');
      const rev = await store.revision();
      const res = await store.txn({
        compare: [cmp.absent(a)],
        success: [op.put(b, 'never')],
        failure: [op.get(a)],
      });
      expect(res.succeeded).toBe(false);
      expect(res.results[0]).toMatchObject({ type: 'get', kvs: [{ value: 'x' }] });
      expect(await store.get(b)).toBeUndefined();
      expect(await store.revision()).toBe(rev);
    });

    it('compares on value, version, create, mod and missing keys', async () => {
      const a = k('a');
      const r = await store.put(a, 'one');
      const ok = (compare: Parameters<KvStore['txn']>[0]['compare']) =>
        store.txn({ compare, success: [] }).then((t) => t.succeeded);
      expect(await ok([cmp.value(a, 'one')])).toBe(true);
      expect(await ok([cmp.value(a, 'two')])).toBe(false);
      expect(await ok([{ key: a, target: 'value', op: '>', value: 'a' }])).toBe(true);
      expect(await ok([{ key: a, target: 'version', op: '=', value: 1 }])).toBe(true);
      expect(await ok([{ key: a, target: 'create', op: '=', value: r.revision }])).toBe(true);
      expect(await ok([cmp.modRev(a, r.revision)])).toBe(true);
      expect(await ok([cmp.modRev(a, r.revision - 1)])).toBe(false);
      expect(await ok([{ key: a, target: 'mod', op: '<', value: r.revision + 1 }])).toBe(true);
      expect(await ok([{ key: a, target: 'version', op: '!=', value: 1 }])).toBe(false);
      const missing = k('missing');
      expect(await ok([cmp.absent(missing)])).toBe(true);
      expect(await ok([cmp.modRev(missing, 0)])).toBe(true);
      expect(await ok([cmp.present(missing)])).toBe(false);
      expect(await ok([cmp.value(missing, '')])).toBe(false);
      // All compares must hold.
      expect(await ok([cmp.value(a, 'one'), cmp.present(missing)])).toBe(false);
    });

    it('refuses a txn that puts the same key twice, writing nothing', async () => {
      const a = k('dup');
      const rev = await store.revision();
      await expect(store.txn({ compare: [], success: [op.put(a, '1'), op.put(a, '2')] })).rejects.toSatisfy(
        (e) => isCode(e, 'E_INVALID_REQUEST'),
      );
      expect(await store.get(a)).toBeUndefined();
      expect(await store.revision()).toBe(rev);
    });

    it('no lost update: of N concurrent read-modify-writes guarded by modRevision, all land', async () => {
      const c = k('counter');
      await store.put(c, '0');
      const incr = async () => {
        for (;;) {
          const kv = await store.get(c);
          const res = await store.txn({
            compare: [cmp.modRev(c, kv!.modRevision)],
            success: [op.put(c, String(Number(kv!.value) + 1))],
          });
          if (res.succeeded) return;
        }
      };
      await Promise.all(Array.from({ length: 20 }, incr));
      expect((await store.get(c))?.value).toBe('20');
    });

    it('leases: keys go with the lease on revoke; keepAlive and timeToLive', async () => {
      const lease = await store.grantLease(30);
      expect(lease.ttl).toBe(30);
      const a = k('leased');
      await store.put(a, 'v', { lease: lease.id });
      expect((await store.get(a))?.lease).toBe(lease.id);
      expect(await store.keepAliveOnce(lease.id)).toBe(30);
      const ttl = await store.leaseTimeToLive(lease.id);
      expect(ttl).toBeGreaterThan(25);
      await store.revokeLease(lease.id);
      expect(await store.get(a)).toBeUndefined();
      expect(await store.leaseTimeToLive(lease.id)).toBeUndefined();
      await expect(store.keepAliveOnce(lease.id)).rejects.toSatisfy((e) => isCode(e, 'E_LEASE_NOT_FOUND'));
      await expect(store.put(k('x'), 'v', { lease: lease.id })).rejects.toSatisfy((e) =>
        isCode(e, 'E_LEASE_NOT_FOUND'),
      );
    });

    it('leases expire after their TTL and delete their keys with delete events', async () => {
      const lease = await store.grantLease(1);
      const p = k('');
      await store.put(`${p}x`, '1', { lease: lease.id });
      await store.put(`${p}y`, '2', { lease: lease.id });
      const w = store.watch(p);
      const got = collect(
        w,
        (all) => all.flatMap((b) => b.events).filter((e) => e.type === 'delete').length >= 2,
        8000,
      );
      const batches = await got;
      w.close();
      const dels = batches.flatMap((b) => b.events).filter((e) => e.type === 'delete');
      expect(dels.map((e) => e.kv.key).sort()).toEqual([`${p}x`, `${p}y`]);
      expect(await store.get(`${p}x`)).toBeUndefined();
    });

    it('watch delivers puts and deletes in revision order, grouped by txn, with prevKv', async () => {
      const p = k('');
      const w = store.watch(p, { prevKv: true });
      await sleep(100); // let the watch be created on etcd before writing
      await store.put(`${p}a`, '1');
      const t = await store.txn({ compare: [], success: [op.put(`${p}a`, '2'), op.put(`${p}b`, '3')] });
      await store.delete(`${p}b`);
      const batches = await collect(w, (all) => all.length >= 3);
      w.close();
      expect(batches.map((b) => b.events.map((e) => `${e.type}:${e.kv.key.slice(p.length)}`))).toEqual([
        ['put:a'],
        ['put:a', 'put:b'],
        ['delete:b'],
      ]);
      expect(batches[1]!.revision).toBe(t.revision);
      expect(batches[1]!.events[0]!.prevKv?.value).toBe('1');
      expect(batches[2]!.events[0]!.kv.modRevision).toBe(t.revision + 1);
      const revs = batches.map((b) => b.revision);
      expect([...revs].sort((x, y) => x - y)).toEqual(revs);
    });

    it('watch resumes from a revision: history is replayed exactly once', async () => {
      const p = k('');
      const first = await store.put(`${p}1`, 'a');
      await store.put(`${p}2`, 'b');
      await store.put(`${p}3`, 'c');
      const w = store.watch(p, { fromRevision: first.revision + 1 });
      const batches = await collect(w, (all) => all.length >= 2);
      w.close();
      expect(batches.map((b) => b.events[0]!.kv.key.slice(p.length))).toEqual(['2', '3']);
    });

    it('a watch only sees its prefix', async () => {
      const p = k('');
      const other = k('');
      const w = store.watch(p);
      await sleep(100);
      await store.put(`${other}x`, 'no');
      await store.put(`${p}x`, 'yes');
      const [b] = await collect(w, (all) => all.length >= 1);
      w.close();
      expect(b!.events.map((e) => e.kv.value)).toEqual(['yes']);
    });

    it('breaking out of a watch loop stops it', async () => {
      const p = k('');
      const w = store.watch(p);
      await sleep(100);
      await store.put(`${p}a`, '1');
      for await (const b of w) {
        expect(b.events).toHaveLength(1);
        break;
      }
      await store.put(`${p}a`, '2'); // must not throw or be queued forever
    });

    if (target.compact) {
      it('a watch from a compacted revision fails with E_REGISTRY_COMPACTED', async () => {
        const p = k('');
        const r = await store.put(`${p}a`, '1');
        await store.put(`${p}a`, '2');
        await target.compact!(store, r.revision + 1);
        const w = store.watch(p, { fromRevision: r.revision });
        await expect(collect(w, () => false, 5000)).rejects.toSatisfy((e) =>
          isCode(e, 'E_REGISTRY_COMPACTED'),
        );
        w.close();
      });
    }

    describe('typed Registry', () => {
      let reg: Registry;
      beforeAll(() => {
        reg = new Registry(store);
      });
      const body = (d: string) => `[Unit]\nDescription=${d}\n\n[Service]\nExecStart=/bin/sleep 1000\n`;

      it('creates a unit with its content-addressed body, once', async () => {
        const name = `${randomUUID().slice(0, 8)}.service`;
        const job = await reg.createUnit(name, body('x'));
        expect(job).toEqual({ name, hash: sha1(body('x')), desiredState: 'inactive' });
        expect(await reg.getUnit(name)).toEqual({ job, body: body('x') });
        await expect(reg.createUnit(name, body('y'))).rejects.toSatisfy((e) => isCode(e, 'E_CONFLICT'));
        expect((await reg.getUnit(name))?.body).toBe(body('x'));
      });

      it('rejects a bogus desired state without writing', async () => {
        const name = `${randomUUID().slice(0, 8)}.service`;
        await expect(reg.createUnit(name, body('x'), 'bogus' as 'loaded')).rejects.toSatisfy((e) =>
          isCode(e, 'E_UNIT_OPTIONS'),
        );
        expect(await reg.getJob(name)).toBeUndefined();
      });

      it('changes desired state and replaces bodies under concurrency without losing an update', async () => {
        const name = `${randomUUID().slice(0, 8)}.service`;
        await reg.createUnit(name, body('x'));
        await Promise.all([
          reg.setDesiredState(name, 'launched'),
          reg.replaceUnit(name, body('z'), 'launched'),
        ]);
        const u = await reg.getUnit(name);
        expect(u?.job.desiredState).toBe('launched');
        expect(u?.body).toBe(body('z'));
        await expect(reg.setDesiredState(`nope-${name}`, 'loaded')).rejects.toSatisfy((e) =>
          isCode(e, 'E_NOT_FOUND'),
        );
      });

      it('destroys a unit with its schedule and states; a shared body stays', async () => {
        const a = `${randomUUID().slice(0, 8)}-a.service`;
        const b = `${randomUUID().slice(0, 8)}-b.service`;
        const shared = body(`shared ${a}`);
        await reg.createUnit(a, shared);
        await reg.createUnit(b, shared);
        const lease = await store.grantLease(30);
        await reg.reportUnitState(
          {
            name: a,
            machineID: 'm1',
            hash: sha1(shared),
            loadState: 'loaded',
            activeState: 'active',
            subState: 'running',
          },
          lease.id,
        );
        expect(await reg.destroyUnit(a)).toBe(true);
        expect(await reg.destroyUnit(a)).toBe(false);
        expect((await reg.listUnitStates()).filter((s) => s.name === a)).toEqual([]);
        expect((await reg.getUnit(b))?.body).toBe(shared);
        expect(await reg.destroyUnit(b)).toBe(true);
        expect(await reg.getBody(sha1(shared))).toBeUndefined();
        await store.revokeLease(lease.id);
      });

      it('refuses a second agent with the same machine ID', async () => {
        const id = randomUUID().replace(/-/g, '');
        const l1 = await store.grantLease(30);
        const l2 = await store.grantLease(30);
        const m = { id, publicIP: '127.0.0.1', metadata: { region: 'eu' }, version: 'test' };
        await reg.registerMachine(m, l1.id);
        await reg.registerMachine({ ...m, publicIP: '127.0.0.2' }, l1.id); // refresh, same lease
        await expect(reg.registerMachine(m, l2.id)).rejects.toSatisfy((e) => isCode(e, 'E_CONFLICT'));
        expect((await reg.listMachines()).find((x) => x.id === id)?.publicIP).toBe('127.0.0.2');
        await store.revokeLease(l1.id);
        expect((await reg.listMachines()).find((x) => x.id === id)).toBeUndefined();
        await reg.registerMachine(m, l2.id); // free again once the first lease is gone
        await store.revokeLease(l2.id);
      });

      it('one leader at a time; a deposed leader cannot write the schedule', async () => {
        const name = `${randomUUID().slice(0, 8)}.service`;
        await reg.createUnit(name, body('sched'), 'launched');
        const la = await store.grantLease(30);
        const lb = await store.grantLease(30);
        const existing = await reg.getLeader();
        if (existing) await store.delete('engine/leader'); // a leftover of an earlier test run
        const ga = await reg.acquireLeadership('A', la.id);
        expect(ga).toBeDefined();
        expect(await reg.acquireLeadership('B', lb.id)).toBeUndefined();
        expect(await reg.writeSchedule(ga!, [{ name, machineID: 'A' }])).toBe(true);
        await store.revokeLease(la.id); // A loses its lease
        const gb = await reg.acquireLeadership('B', lb.id);
        expect(gb?.machineID).toBe('B');
        expect(await reg.writeSchedule(ga!, [{ name, machineID: 'stale' }])).toBe(false);
        expect(
          await reg.writeSchedule(gb!, [{ name, reason: 'no machine matches MachineMetadata region=eu' }]),
        ).toBe(true);
        expect((await reg.listSchedules()).find((s) => s.name === name)).toEqual({
          name,
          reason: 'no machine matches MachineMetadata region=eu',
        });
        // Scheduling a unit that does not exist is refused as a whole.
        expect(await reg.writeSchedule(gb!, [{ name: `gone-${name}`, machineID: 'B' }])).toBe(false);
        await reg.resignLeadership(gb!);
        expect(await reg.getLeader()).toBeUndefined();
        await store.revokeLease(lb.id);
        await reg.destroyUnit(name);
      });

      it('snapshot + watch from its revision misses nothing', async () => {
        const snap = await reg.snapshot();
        const name = `${randomUUID().slice(0, 8)}.service`;
        await reg.createUnit(name, body('w'));
        await reg.setDesiredState(name, 'loaded');
        const w = reg.watch({ prefix: 'job/', fromRevision: snap.revision + 1 });
        const batches = await collect(w, (all) =>
          all.some((b) =>
            b.events.some((e) => e.kv.key === `job/${name}` && e.kv.value.includes('"loaded"')),
          ),
        );
        w.close();
        const mine = batches.flatMap((b) => b.events).filter((e) => e.kv.key === `job/${name}`);
        expect(mine.map((e) => (JSON.parse(e.kv.value) as { desiredState: string }).desiredState)).toEqual([
          'inactive',
          'loaded',
        ]);
        expect(snap.jobs.has(name)).toBe(false);
        await reg.destroyUnit(name);
      });

      it('gcBodies removes only bodies no job uses', async () => {
        const name = `${randomUUID().slice(0, 8)}.service`;
        await reg.createUnit(name, body('gc1'));
        await reg.replaceUnit(name, body('gc2'), 'inactive'); // gc1's body is now unused
        expect(await reg.gcBodies()).toBeGreaterThanOrEqual(1);
        expect(await reg.getBody(sha1(body('gc1')))).toBeUndefined();
        expect((await reg.getUnit(name))?.body).toBe(body('gc2'));
        await reg.destroyUnit(name);
      });
    });

    if (target.members) {
      const members = target.members;
      it(`a watch survives killing each of the ${members.count} members in turn, missing no revision`, async () => {
        const p = k('');
        // Writes go through the same client's pool (any live member); the watch stream sits on one
        // member, so killing each member in turn kills the one it is connected to.
        const writer = store;
        members.restart(); // start from a healthy cluster
        const w = store.watch(p);
        await sleep(200);
        const total = members.count * 10;
        const got = collect(w, (all) => all.length >= total, 60_000);
        let n = 0;
        try {
          for (let m = 1; m <= members.count; m++) {
            for (let i = 0; i < 5; i++) await writer.put(`${p}${String(n++).padStart(3, '0')}`, 'v');
            members.kill(m);
            for (let i = 0; i < 5; i++) await writer.put(`${p}${String(n++).padStart(3, '0')}`, 'v');
            members.restart();
          }
        } finally {
          members.restart();
        }
        const batches = await got;
        w.close();
        const keys = batches.flatMap((b) => b.events.map((e) => e.kv.key.slice(p.length)));
        expect(keys).toEqual(Array.from({ length: total }, (_, i) => String(i).padStart(3, '0')));
        const revs = batches.map((b) => b.revision);
        expect(new Set(revs).size).toBe(revs.length);
      });
    }
  });
}
