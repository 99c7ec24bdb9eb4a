/** locksmith's semaphore rules (LS:lock/semaphore.go) plus reaping of departed holders, table-driven. */
import { describe, expect, it } from 'vitest';
import {
  parseSemaphore,
  planLock,
  planSetMax,
  planUnlock,
  type Planned,
  type SemaphoreRecord,
} from '../../../src/locksmith/semaphore.js';

const rec = (semaphore: number, max: number, holders: string[] | null): SemaphoreRecord => ({
  semaphore,
  max,
  holders,
});
const live = (...ids: string[]) => new Set(ids);

interface Case {
  name: string;
  got: Planned;
  want: Partial<Planned>;
}

const cases: Case[] = [
  {
    name: 'lock: a free slot is taken',
    got: planLock(rec(1, 1, null), live(), 'a'),
    want: { ok: true, next: rec(0, 1, ['a']), dropped: [] },
  },
  {
    name: 'lock: holders stay sorted',
    got: planLock(rec(1, 2, ['m']), live('m'), 'b'),
    want: { ok: true, next: rec(0, 2, ['b', 'm']) },
  },
  {
    name: 'lock: no slot',
    got: planLock(rec(0, 1, ['a']), live('a'), 'b'),
    want: { ok: false, error: 'semaphore is at 0' },
  },
  {
    name: 'lock: negative after set-max',
    got: planLock(rec(-1, 1, ['a', 'b']), live('a', 'b'), 'c'),
    want: { ok: false, error: 'semaphore is at -1' },
  },
  {
    name: 'lock: the same holder twice',
    got: planLock(rec(1, 2, ['a']), live('a'), 'a'),
    want: { ok: false, error: 'holder exists' },
  },
  {
    name: 'lock: a holder whose lease is gone is dropped and its slot taken',
    got: planLock(rec(0, 1, ['dead']), live(), 'b'),
    want: { ok: true, next: rec(0, 1, ['b']), dropped: ['dead'] },
  },
  {
    name: 'lock: a departed holder may take the lock again (it rebooted and lost its lease)',
    got: planLock(rec(0, 1, ['a']), live(), 'a'),
    want: { ok: true, next: rec(0, 1, ['a']), dropped: ['a'] },
  },
  {
    name: 'unlock: the slot comes back; no holders is null as in Go',
    got: planUnlock(rec(0, 1, ['a']), live('a'), 'a'),
    want: { ok: true, next: rec(1, 1, null) },
  },
  {
    name: 'unlock: not a holder',
    got: planUnlock(rec(1, 1, null), live(), 'a'),
    want: { ok: false, error: 'holder does not exist' },
  },
  {
    name: 'unlock: a holder already reaped does not exist, and the reaped record is returned',
    got: planUnlock(rec(0, 1, ['a']), live(), 'a'),
    want: { ok: false, error: 'holder does not exist', next: rec(1, 1, null), dropped: ['a'] },
  },
  {
    name: 'set-max: raising adds slots',
    got: planSetMax(rec(0, 1, ['a']), live('a'), 3),
    want: { ok: true, next: rec(2, 3, ['a']) },
  },
  {
    name: 'set-max: lowering below the holders goes negative (holders unaffected)',
    got: planSetMax(rec(0, 2, ['a', 'b']), live('a', 'b'), 1),
    want: { ok: true, next: rec(-1, 1, ['a', 'b']) },
  },
];

describe('semaphore planner', () => {
  for (const c of cases) it(c.name, () => expect(c.got).toMatchObject(c.want));
});

describe('parseSemaphore', () => {
  it("reads locksmith's own JSON (holders null or a list)", () => {
    expect(parseSemaphore('k', '{"semaphore":1,"max":1,"holders":null}')).toEqual(rec(1, 1, null));
    expect(parseSemaphore('k', '{"semaphore":0,"max":1,"holders":["a"]}')).toEqual(rec(0, 1, ['a']));
  });
  it.each([
    ['nope', 'k: not JSON'],
    ['[]', 'k: "semaphore" must be an integer'],
    ['{"semaphore":1,"max":1.5,"holders":null}', 'k: "max" must be an integer'],
    ['{"semaphore":1,"max":1,"holders":[1]}', 'k: "holders" must be null or a list of machine IDs'],
  ])('refuses %s naming the field', (text, msg) => {
    expect(() => parseSemaphore('k', text)).toThrow(msg);
  });
});
