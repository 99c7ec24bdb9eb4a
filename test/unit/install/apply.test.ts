/** The executor's undo log on a real file system (a temp dir); systemctl is the injected port. */
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readlinkSync,
  readdirSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { applyActions } from '../../../src/install/apply.js';
import type { Action } from '../../../src/install/plan.js';
import { isCode } from '../../../src/lib/errors.js';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'flotilla-apply-'));
  mkdirSync(join(dir, 'src/sub'), { recursive: true });
  writeFileSync(join(dir, 'src/sub/file'), 'code');
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

function actions(): Action[] {
  return [
    { kind: 'copy-tree', from: join(dir, 'src'), to: join(dir, 'lib/flotilla'), reason: 'tree' },
    { kind: 'mkdir', path: join(dir, 'bin'), mode: 0o755, reason: 'bin' },
    { kind: 'link', path: join(dir, 'bin/fleetctl'), target: '../lib/flotilla/bin/flotilla', reason: 'link' },
    { kind: 'write', path: join(dir, 'etc.conf'), content: 'new\n', mode: 0o644, reason: 'conf' },
    { kind: 'systemctl', argv: ['enable', 'x'], undo: ['disable', 'x'], reason: 'enable' },
  ];
}

describe('applyActions', () => {
  it('applies every step and leaves no set-aside copies', async () => {
    writeFileSync(join(dir, 'etc.conf'), 'old\n');
    const calls: string[] = [];
    const systemctl = (a: string[]) => {
      calls.push(a.join(' '));
      return Promise.resolve();
    };
    await applyActions(actions(), { systemctl });
    expect(readFileSync(join(dir, 'lib/flotilla/sub/file'), 'utf8')).toBe('code');
    expect(readlinkSync(join(dir, 'bin/fleetctl'))).toBe('../lib/flotilla/bin/flotilla');
    expect(readFileSync(join(dir, 'etc.conf'), 'utf8')).toBe('new\n');
    expect(calls).toEqual(['enable x']);
    expect(readdirSync(dir).filter((f) => f.includes('flotilla-undo'))).toEqual([]);
  });

  it('undoes every earlier step when one fails, restoring what it had replaced', async () => {
    writeFileSync(join(dir, 'etc.conf'), 'old\n');
    const calls: string[] = [];
    const undone: string[] = [];
    const err = await applyActions(actions(), {
      systemctl: (a) => {
        calls.push(a.join(' '));
        return a[0] === 'enable'
          ? Promise.reject(new Error('Unit x.service does not exist'))
          : Promise.resolve();
      },
      undone: (w) => undone.push(w),
    }).catch((e: unknown) => e);
    expect(isCode(err, 'E_INSTALL')).toBe(true);
    expect((err as Error).message).toMatch(
      /step 5\/5 \(enable: systemctl enable x\) failed: Unit x.service does not exist/,
    );
    expect(calls).toEqual(['enable x', 'disable x']);
    expect(existsSync(join(dir, 'lib/flotilla'))).toBe(false);
    expect(existsSync(join(dir, 'bin'))).toBe(false);
    expect(readFileSync(join(dir, 'etc.conf'), 'utf8')).toBe('old\n');
    expect(readdirSync(dir).sort()).toEqual(['etc.conf', 'lib', 'src']);
    expect(undone.length).toBeGreaterThan(4);
  });

  it('a remove is a rename aside until the end, so a later failure brings the tree back', async () => {
    mkdirSync(join(dir, 'old-tree'));
    writeFileSync(join(dir, 'old-tree/v'), '1');
    mkdirSync(join(dir, 'blocker'));
    const err = await applyActions(
      [
        { kind: 'remove', path: join(dir, 'old-tree'), reason: 'old' },
        // Writing a file over a non-empty directory's child path that is itself a directory fails.
        { kind: 'write', path: join(dir, 'blocker/x/y'), content: '', mode: 0o644, reason: 'fails' },
      ],
      { systemctl: () => Promise.resolve() },
    ).catch((e: unknown) => e);
    expect(isCode(err, 'E_INSTALL')).toBe(true);
    expect(readFileSync(join(dir, 'old-tree/v'), 'utf8')).toBe('1');
  });
});
