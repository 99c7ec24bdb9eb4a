import { writeFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  compareVersions,
  formatStatus,
  INITIAL,
  readState,
  transition,
  writeState,
  type EngineEvent,
  type EngineState,
} from '../../../src/update/state.js';
import { scratch } from './disk-image.js';

const run = (events: EngineEvent[], from: EngineState = INITIAL) => events.reduce(transition, from);

describe('update_engine status machine', () => {
  it('a full update: IDLE → … → UPDATED_NEED_REBOOT', () => {
    const seen: string[] = [];
    let s = INITIAL;
    for (const e of [
      { type: 'check' },
      { type: 'available', at: 1000, version: '2.0.0', size: 42 },
      { type: 'progress', fraction: 0.5 },
      { type: 'progress', fraction: 1 },
      { type: 'downloaded' },
      { type: 'verified' },
      { type: 'written', slot: 'B' },
    ] as EngineEvent[]) {
      s = transition(s, e);
      seen.push(s.status.replace('UPDATE_STATUS_', ''));
    }
    expect(seen).toEqual([
      'CHECKING_FOR_UPDATE',
      'UPDATE_AVAILABLE',
      'DOWNLOADING',
      'DOWNLOADING',
      'VERIFYING',
      'FINALIZING',
      'UPDATED_NEED_REBOOT',
    ]);
    expect(s).toMatchObject({
      lastCheckedTime: 1000,
      progress: 1,
      newVersion: '2.0.0',
      newSize: 42,
      slot: 'B',
    });
  });

  it('no update: back to IDLE with the check time', () => {
    expect(run([{ type: 'check' }, { type: 'no-update', at: 77 }])).toEqual({
      ...INITIAL,
      lastCheckedTime: 77,
    });
  });

  it('check only: back to IDLE with the found version shown', () => {
    const s = run([
      { type: 'check' },
      { type: 'available', at: 5, version: '3.0.0', size: 9 },
      { type: 'check-done' },
    ]);
    expect(s).toMatchObject({ status: 'UPDATE_STATUS_IDLE', newVersion: '3.0.0', newSize: 9 });
  });

  it('an error in any active step goes through REPORTING_ERROR_EVENT to IDLE, keeping the error', () => {
    for (const prefix of [
      [{ type: 'check' }],
      [
        { type: 'check' },
        { type: 'available', at: 1, version: '2', size: 1 },
        { type: 'progress', fraction: 0.2 },
      ],
      [{ type: 'check' }, { type: 'available', at: 1, version: '2', size: 1 }, { type: 'downloaded' }],
      [
        { type: 'check' },
        { type: 'available', at: 1, version: '2', size: 1 },
        { type: 'downloaded' },
        { type: 'verified' },
      ],
    ] as EngineEvent[][]) {
      const s = run([...prefix, { type: 'error', message: 'E_UPDATE_VERIFY: bad' }]);
      expect(s.status).toBe('UPDATE_STATUS_REPORTING_ERROR_EVENT');
      const after = transition(s, { type: 'reported' });
      expect(after).toMatchObject({
        status: 'UPDATE_STATUS_IDLE',
        lastError: 'E_UPDATE_VERIFY: bad',
        newVersion: '0.0.0',
      });
    }
  });

  it('NEED_REBOOT: a check is a no-op, reset returns to IDLE and clears version and size', () => {
    const done = run([
      { type: 'check' },
      { type: 'available', at: 1, version: '2', size: 10 },
      { type: 'downloaded' },
      { type: 'verified' },
      { type: 'written', slot: 'A' },
    ]);
    expect(transition(done, { type: 'check' })).toBe(done);
    expect(transition(done, { type: 'reset' })).toEqual({ ...INITIAL, lastCheckedTime: 1 });
    expect(transition(INITIAL, { type: 'reset' })).toBe(INITIAL);
  });

  it('events out of place are refused with E_CONFLICT naming status and event', () => {
    const cases: [EngineEvent[], EngineEvent][] = [
      [[], { type: 'downloaded' }],
      [[], { type: 'error', message: 'x' }],
      [[{ type: 'check' }], { type: 'verified' }],
      [[{ type: 'check' }], { type: 'check' }],
      [[{ type: 'check' }], { type: 'reset' }],
      [
        [{ type: 'check' }, { type: 'available', at: 1, version: '2', size: 1 }],
        { type: 'written', slot: 'B' },
      ],
      [
        [{ type: 'check' }, { type: 'available', at: 1, version: '2', size: 1 }],
        { type: 'progress', fraction: 2 },
      ],
    ];
    for (const [prefix, e] of cases) {
      const s = run(prefix);
      expect(() => transition(s, e)).toThrow(new RegExp(`event ${e.type} is not allowed in ${s.status}`));
    }
  });

  it('progress never goes backwards', () => {
    const s = run([
      { type: 'check' },
      { type: 'available', at: 1, version: '2', size: 1 },
      { type: 'progress', fraction: 0.6 },
      { type: 'progress', fraction: 0.4 },
    ]);
    expect(s.progress).toBe(0.6);
  });
});

describe('update_engine_client -status format', () => {
  it('prints the five lines as the original printf did (PROGRESS as %f)', () => {
    expect(formatStatus(INITIAL)).toBe(
      'LAST_CHECKED_TIME=0\nPROGRESS=0.000000\nCURRENT_OP=UPDATE_STATUS_IDLE\nNEW_VERSION=0.0.0\nNEW_SIZE=0\n',
    );
    expect(
      formatStatus({
        ...INITIAL,
        status: 'UPDATE_STATUS_DOWNLOADING',
        lastCheckedTime: 1765000000,
        progress: 0.25,
        newVersion: '4081.2.0',
        newSize: 123,
      }),
    ).toBe(
      'LAST_CHECKED_TIME=1765000000\nPROGRESS=0.250000\nCURRENT_OP=UPDATE_STATUS_DOWNLOADING\nNEW_VERSION=4081.2.0\nNEW_SIZE=123\n',
    );
  });
});

describe('status file and versions', () => {
  it('round-trips, and a damaged file is an error naming it', () => {
    const s = scratch();
    try {
      expect(readState(s.dir)).toEqual(INITIAL);
      const st = { ...INITIAL, status: 'UPDATE_STATUS_VERIFYING' as const, newVersion: '2' };
      writeState(s.dir, st);
      expect(readState(s.dir)).toEqual(st);
      writeFileSync(`${s.dir}/status.json`, '{"status":"BOGUS"}');
      expect(() => readState(s.dir)).toThrow(/status.json: no valid status/);
    } finally {
      s.cleanup();
    }
  });
  it('compares dotted versions numerically', () => {
    expect(compareVersions('4081.10.0', '4081.2.0')).toBe(1);
    expect(compareVersions('1.0', '1.0.0')).toBe(0);
    expect(compareVersions('0.9.9', '1.0.0')).toBe(-1);
  });
});
