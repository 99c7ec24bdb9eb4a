/** writeAtomic (src/lib/fs.ts) on a real temporary directory. */
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { writeAtomic } from '../../../src/lib/fs.js';

const dirs: string[] = [];
const tmp = () => {
  const d = mkdtempSync(join(tmpdir(), 'flotilla-fs-'));
  dirs.push(d);
  return d;
};
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe('writeAtomic', () => {
  it('replaces the file whole, with the mode asked (0600 by default), leaving no temporary file', () => {
    const d = tmp();
    const p = join(d, 'agent.lease');
    writeFileSync(p, 'old contents that are longer');
    writeAtomic(p, 'new');
    expect(readFileSync(p, 'utf8')).toBe('new');
    expect(statSync(p).mode & 0o777).toBe(0o600);
    writeAtomic(p, new Uint8Array([104, 105]), { mode: 0o644 });
    expect(readFileSync(p, 'utf8')).toBe('hi');
    expect(statSync(p).mode & 0o777).toBe(0o644);
    expect(readdirSync(d)).toEqual(['agent.lease']);
  });

  it('creates the parent directory only when asked', () => {
    const d = tmp();
    expect(() => writeAtomic(join(d, 'a', 'f'), 'x')).toThrow(/ENOENT/);
    writeAtomic(join(d, 'a', 'b', 'f'), 'x', { mkdirMode: 0o755 });
    expect(readFileSync(join(d, 'a', 'b', 'f'), 'utf8')).toBe('x');
  });
});
