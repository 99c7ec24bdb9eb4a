/**
 * The pure parts of the embedded store, against simple models: the sorted key index against a
 * sorted array, and the state machine's determinism (replaying its records reproduces it exactly).
 */
import { describe, expect, it } from 'vitest';
import { SortedKeys, compareKeys } from '../../../src/registry/embedded/keyorder.js';
import { decodeRecord, encodeRecord, type LogRecord } from '../../../src/registry/embedded/records.js';
import { KvState } from '../../../src/registry/embedded/state.js';
import { cmp, op, type Op } from '../../../src/registry/kv.js';

/** A small deterministic PRNG (mulberry32), so a failure can be replayed from its seed. */
function rng(seed: number): (n: number) => number {
  let a = seed >>> 0;
  return (n) => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return Math.floor((((t ^ (t >>> 14)) >>> 0) / 4294967296) * n);
  };
}

const utf8Order = (a: string, b: string) => Buffer.compare(Buffer.from(a), Buffer.from(b));

describe('keyorder', () => {
  it('compareKeys orders like UTF-8 bytes (etcd)', () => {
    const keys = ['a', 'ab', 'b', '', '\uFFFD', '\u{1F600}', '\uE000', 'é', 'z\u{10FFFF}', 'z\uFFFF', 'A'];
    expect([...keys].sort(compareKeys)).toEqual([...keys].sort(utf8Order));
  });

  it('SortedKeys matches a sorted array through random inserts, removes and prefix scans', () => {
    const r = rng(42);
    const s = new SortedKeys();
    const model = new Set<string>();
    const alphabet = ['a', 'b', 'c', '/', '\u{1F600}'];
    const randomKey = () => Array.from({ length: 1 + r(6) }, () => alphabet[r(alphabet.length)]).join('');
    for (let i = 0; i < 20_000; i++) {
      const k = randomKey();
      if (r(3) === 0) {
        expect(s.remove(k)).toBe(model.delete(k));
      } else if (!model.has(k)) {
        s.insert(k);
        model.add(k);
      }
      if (i % 500 === 0) {
        const sorted = [...model].sort(utf8Order);
        expect([...s]).toEqual(sorted);
        const p = randomKey().slice(0, 2);
        expect(s.withPrefix(p)).toEqual(sorted.filter((x) => x.startsWith(p)));
        expect(s.withPrefix(p, 3)).toEqual(sorted.filter((x) => x.startsWith(p)).slice(0, 3));
      }
    }
    expect(s.size).toBe(model.size);
    expect([...SortedKeys.from(model)]).toEqual([...s]);
  });
});

describe('KvState', () => {
  it('replaying its records (through JSON) reproduces the same state, revisions and events', () => {
    const r = rng(7);
    const live = new KvState();
    const records: LogRecord[] = [];
    const liveEvents: unknown[] = [];
    const leases: string[] = [];
    const key = () => `k/${r(4)}/${r(30)}`;
    for (let i = 0; i < 3000; i++) {
      const choice = r(10);
      try {
        if (choice === 0) {
          const id = String(1000 + i);
          records.push(live.execGrant(id, 10 + r(50)).record);
          leases.push(id);
        } else if (choice === 1 && leases.length) {
          const id = leases.splice(r(leases.length), 1)[0]!;
          const a = live.execRevoke(id);
          records.push(a.record);
          if (a.events.length) liveEvents.push(a.events);
        } else {
          const ops: Op[] = [];
          for (let j = 0; j < 1 + r(3); j++) {
            const kind = r(6);
            if (kind === 0) ops.push(op.del(`k/${r(4)}/`, true));
            else if (kind === 1) ops.push(op.del(key()));
            else if (kind === 2) ops.push(op.get(key()));
            else
              ops.push(op.put(key(), `v${i}`, leases.length && r(2) ? leases[r(leases.length)] : undefined));
          }
          const k = key();
          const compare = r(2) ? [cmp.absent(k)] : [cmp.modRev(k, r(live.revision + 1))];
          const { applied } = live.execTxn({ compare, success: ops, failure: [op.put(key(), 'f')] });
          if (applied) {
            records.push(applied.record);
            liveEvents.push(applied.events);
          }
        }
      } catch (err) {
        // Rejected txns (duplicate keys, put inside a deleted range) must change nothing.
        expect((err as { code?: string }).code).toBe('E_INVALID_REQUEST');
      }
    }
    expect(live.revision).toBeGreaterThan(1000);

    const replay = new KvState();
    const replayEvents: unknown[] = [];
    for (const rec of records) {
      const decoded = decodeRecord(encodeRecord(rec));
      expect(decoded).toEqual(rec);
      const events = replay.apply(decoded!, { file: 'test', offset: 0 });
      if (events.length) replayEvents.push(events);
    }
    expect(replayEvents).toEqual(liveEvents);
    expect(replay.revision).toBe(live.revision);
    expect(replay.seq).toBe(live.seq);
    expect(replay.range('')).toEqual(live.range(''));
    expect(replay.leaseIds().sort()).toEqual(live.leaseIds().sort());

    // And through a snapshot.
    const c = live.capture();
    const restored = KvState.fromSnapshot({
      v: 1,
      seq: c.seq,
      revision: c.revision,
      leases: c.leases,
      kvs: c.entries.map((kv) => [kv.key, kv.value, kv.createRevision, kv.modRevision, kv.version, kv.lease]),
    });
    expect(restored.range('')).toEqual(live.range(''));
    for (const id of live.leaseIds()) {
      // Lease membership survives: revoking deletes the same keys in both.
      expect(restored.execRevoke(id).events.map((e) => e.kv.key)).toEqual(
        replay.execRevoke(id).events.map((e) => e.kv.key),
      );
    }
  });

  it('refuses to replay a record that does not follow (sequence or revision gap)', () => {
    const s = new KvState();
    const where = { file: 'f', offset: 8 };
    expect(() => s.apply({ t: 'w', s: 2, r: 1, e: [['p', 'a', 'b', '0']] }, where)).toThrow(
      /record 2 follows record 0/,
    );
    expect(() => s.apply({ t: 'w', s: 1, r: 2, e: [['p', 'a', 'b', '0']] }, where)).toThrow(/revision 2/);
    expect(() => s.apply({ t: 'w', s: 1, r: 1, e: [['d', 'a']] }, where)).toThrow(/missing key/);
    expect(() => s.apply({ t: 'w', s: 1, r: 1, e: [['p', 'a', 'b', '9']] }, where)).toThrow(/unknown lease/);
  });
});
