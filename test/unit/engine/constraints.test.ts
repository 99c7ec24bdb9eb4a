/** The [X-Fleet] predicates shared by the scheduler and the agent (fleet agent/state.go, machine.go). */
import { describe, expect, it } from 'vitest';
import {
  GlobCache,
  conflictBetween,
  formatMetadata,
  machineIDMatches,
  metadataMatches,
  metadataSignature,
  replacePattern,
  selectConflictFree,
  shortMachineID,
} from '../../../src/engine/constraints.js';
import { LoadHeap } from '../../../src/engine/load-heap.js';

const FULL = '0123456789abcdef0123456789abcdef';
const match = (p: string, n: string) => new GlobCache().match(p, n);
const rules = (name: string, conflicts: string[] = [], replaces: string[] = []) => ({
  name,
  conflicts,
  replaces,
});

describe('machineIDMatches (fleet MatchID)', () => {
  it.each([
    [FULL, FULL, true],
    ['01234567', FULL, true],
    ['0123456', FULL, false],
    ['012345678', FULL, false],
    ['fedcba98', FULL, false],
    ['', FULL, false],
    ['short', 'short', true],
  ])('%s vs %s → %s', (wanted, id, ok) => {
    expect(machineIDMatches(wanted, id)).toBe(ok);
  });
});

describe('metadataMatches (fleet HasMetadata: OR within a key, AND across keys)', () => {
  it.each([
    [{}, {}, true],
    [{ region: ['eu'] }, { region: 'eu' }, true],
    [{ region: ['eu', 'us'] }, { region: 'us' }, true],
    [{ region: ['eu'] }, { region: 'us' }, false],
    [{ region: ['eu'] }, {}, false],
    [{ region: ['eu'], disk: ['ssd'] }, { region: 'eu', disk: 'ssd', extra: 'x' }, true],
    [{ region: ['eu'], disk: ['ssd'] }, { region: 'eu', disk: 'hdd' }, false],
    [{ toString: ['x'] }, {}, false],
  ])('%j on %j → %s', (required, have, ok) => {
    expect(metadataMatches(required as Record<string, string[]>, have as Record<string, string>)).toBe(ok);
  });

  it('formats and signs requirements', () => {
    expect(formatMetadata({ region: ['eu', 'us'], disk: ['ssd'] })).toBe('region=eu|us, disk=ssd');
    expect(metadataSignature({ b: ['2', '1'], a: ['x'] })).toBe(
      metadataSignature({ a: ['x'], b: ['1', '2'] }),
    );
    expect(shortMachineID(FULL)).toBe('01234567...');
    expect(shortMachineID('m1')).toBe('m1');
  });
});

describe('conflictBetween (symmetric) and replacePattern (circular ignored)', () => {
  it('either side’s pattern counts, never a unit with itself', () => {
    expect(conflictBetween(rules('a.service', ['b*']), rules('b.service'), match)).toEqual({
      owner: 'a.service',
      pattern: 'b*',
    });
    expect(conflictBetween(rules('b.service'), rules('a.service', ['b*']), match)).toEqual({
      owner: 'a.service',
      pattern: 'b*',
    });
    expect(conflictBetween(rules('a.service', ['a*']), rules('a.service', ['a*']), match)).toBeUndefined();
    expect(conflictBetween(rules('a.service', ['[']), rules('['), match)).toBeUndefined();
  });

  it('replaces one way only', () => {
    expect(replacePattern(rules('new', [], ['old*']), rules('old-1'), match)).toBe('old*');
    expect(replacePattern(rules('old-1'), rules('new', [], ['old*']), match)).toBeUndefined();
    expect(replacePattern(rules('a', [], ['b']), rules('b', [], ['a']), match)).toBeUndefined();
  });

  it('selectConflictFree keeps the lower name', () => {
    const units = [rules('c', ['b']), rules('b', ['a']), rules('a')];
    const { kept, dropped } = selectConflictFree(units, (x, y) => conflictBetween(x, y, match));
    expect(kept.map((u) => u.name)).toEqual(['a', 'c']);
    expect(dropped.map((d) => [d.unit.name, d.winner.name])).toEqual([['b', 'a']]);
  });
});

describe('GlobCache', () => {
  it('answers like globMatch and starts over past its limit', () => {
    const cache = new GlobCache(2);
    expect(cache.match('web@*.service', 'web@1.service')).toBe(true);
    expect(cache.match('web@*.service', 'api.service')).toBe(false);
    expect(cache.match('web@?.service', 'web@12.service')).toBe(false);
    expect(cache.match('web@*.service', 'web@1.service')).toBe(true);
  });
});

describe('LoadHeap', () => {
  it('always yields the least-loaded machine, lowest index among equals', () => {
    const load = [3, 1, 1, 0, 2];
    const heap = new LoadHeap(load);
    expect(heap.peek()).toBe(3);
    const seen: number[] = [];
    for (let i = 0; i < 20; i++) {
      const m = heap.peek() ?? -1;
      const min = Math.min(...load);
      expect(load[m]).toBe(min);
      expect(m).toBe(load.indexOf(min));
      seen.push(m);
      load[m] = (load[m] ?? 0) + 1;
      heap.update(m);
      if (i % 5 === 4) {
        load[0] = 0;
        heap.update(0);
      }
    }
    expect(new LoadHeap([]).peek()).toBeUndefined();
  });
});
