import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  decodeGrubEnv,
  encodeGrubEnv,
  flotillaGrubCfg,
  foldGrubTries,
  readGrubEnv,
  writeGrubEnv,
} from '../../../src/update/grub.js';
import {
  chooseBoot,
  markGood,
  markInstalled,
  markWriting,
  rollback,
  type Flags,
} from '../../../src/update/slots.js';
import { scratch } from './disk-image.js';

const f = (priority: number, tries: number, successful: boolean) => ({ priority, tries, successful });
const fresh: Flags = { A: f(2, 0, true), B: f(1, 0, false) };

describe('gptprio boot choice', () => {
  const table: [string, Flags, 'A' | 'B' | undefined, Flags | undefined][] = [
    ['fresh install boots A', fresh, 'A', fresh],
    [
      'a trial slot with a try boots and loses the try',
      { A: f(1, 0, true), B: f(2, 1, false) },
      'B',
      { A: f(1, 0, true), B: f(2, 0, false) },
    ],
    [
      'a used-up trial is skipped: rollback to A',
      { A: f(1, 0, true), B: f(2, 0, false) },
      'A',
      { A: f(1, 0, true), B: f(2, 0, false) },
    ],
    [
      'priority 0 never boots, even when successful',
      { A: f(0, 3, true), B: f(1, 0, true) },
      'B',
      { A: f(0, 3, true), B: f(1, 0, true) },
    ],
    ['on a tie A wins', { A: f(1, 0, true), B: f(1, 0, true) }, 'A', { A: f(1, 0, true), B: f(1, 0, true) }],
    ['nothing bootable', { A: f(0, 0, true), B: f(3, 0, false) }, undefined, undefined],
  ];
  it.each(table)('%s', (_name, flags, slot, after) => {
    const c = chooseBoot(flags);
    expect(c?.slot).toBe(slot);
    expect(c?.after).toEqual(after);
  });

  it('update, trial boot without mark-good, next boot rolls back; with mark-good it sticks', () => {
    const writing = markWriting(fresh, 'B');
    expect(writing.B).toEqual(f(0, 0, false));
    expect(chooseBoot(writing)?.slot).toBe('A'); // a crash mid-write boots the old slot
    const installed = markInstalled(writing, 'B');
    expect(installed).toEqual({ A: f(1, 0, true), B: f(2, 1, false) }); // the table in host-tools §3.2
    const trial = chooseBoot(installed)!;
    expect([trial.slot, trial.trial]).toEqual(['B', true]);
    expect(chooseBoot(trial.after)?.slot).toBe('A'); // never marked good: rollback
    const good = markGood(trial.after, 'B');
    expect(good).toEqual({ A: f(1, 0, true), B: f(2, 0, true) });
    expect(chooseBoot(good)).toMatchObject({ slot: 'B', trial: false });
  });

  it('rollback raises the other slot only when it was good', () => {
    const good = { A: f(1, 0, true), B: f(2, 0, true) };
    expect(rollback(good, 'B')).toEqual({ A: f(2, 0, true), B: f(1, 0, true) });
    expect(() => rollback({ A: f(2, 0, true), B: f(0, 0, false) }, 'A')).toThrow(
      /slot B was never marked successful/,
    );
  });
});

describe('grubenv', () => {
  it('is a 1024-byte block with the magic line, padded with #', () => {
    const b = encodeGrubEnv({ flotilla_a_tries: '1', path: 'a\\b' });
    expect(b.length).toBe(1024);
    expect(b.toString('utf8', 0, 25)).toBe('# GRUB Environment Block\n');
    expect(b.toString('utf8', 25, 54)).toBe('flotilla_a_tries=1\npath=a\\\\b\n');
    expect(b.subarray(54).every((c) => c === 0x23)).toBe(true);
    expect(decodeGrubEnv(b)).toEqual({ flotilla_a_tries: '1', path: 'a\\b' });
    expect(() => encodeGrubEnv({ x: 'y'.repeat(1100) })).toThrow(/over 1024/);
    expect(() => encodeGrubEnv({ 'a b': '1' })).toThrow(/bad variable name a b/);
  });

  it('is written atomically and read back; GRUB decrements fold into the GPT flags', async () => {
    const s = scratch();
    try {
      const p = join(s.dir, 'grubenv');
      expect(await readGrubEnv(p)).toBeUndefined();
      await writeGrubEnv(p, { flotilla_b_tries: '0', flotilla_a_tries: '7' });
      const env = await readGrubEnv(p);
      const flags = { A: f(1, 0, true), B: f(2, 1, false) };
      expect(foldGrubTries(flags, env)).toEqual({ A: f(1, 0, true), B: f(2, 0, false) });
      const editenv = ['/usr/bin/grub-editenv', '/bin/grub-editenv'].find((x) => existsSync(x));
      if (editenv)
        expect(execFileSync(editenv, [p, 'list'], { encoding: 'utf8' })).toBe(
          'flotilla_b_tries=0\nflotilla_a_tries=7\n',
        );
    } finally {
      s.cleanup();
    }
  });
});

describe('grub.cfg snippet', () => {
  const shipped = new URL('../../../grub/flotilla-ab.cfg', import.meta.url);
  it('the shipped file is the generated one', () => {
    expect(readFileSync(shipped, 'utf8')).toBe(flotillaGrubCfg());
  });
  const check = ['/usr/bin/grub-script-check', '/bin/grub-script-check'].find((x) => existsSync(x));
  it.skipIf(!check && process.env.TESTENV_REQUIRED !== '1')(
    'passes grub-script-check (apt grub-common)',
    () => {
      const s = scratch();
      try {
        const p = join(s.dir, 'g.cfg');
        writeFileSync(p, flotillaGrubCfg());
        execFileSync(check ?? 'grub-script-check', [p]);
      } finally {
        s.cleanup();
      }
    },
  );
});
