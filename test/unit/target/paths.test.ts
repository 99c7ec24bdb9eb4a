/**
 * resolveInRoot against real trees: lstat walk, symlinks inside the root followed, escapes refused
 * (absolute target outside, relative ".." out, ".." in the path), loops, files used as directories,
 * the final component not followed unless asked, and the planned overlay.
 */
import { mkdirSync, mkdtempSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { realRoot, resolveInRoot, type Overlay } from '../../../src/target/paths.js';

let root: string;
beforeEach(() => {
  root = realpathSync(mkdtempSync(join(tmpdir(), 'flotilla-paths-')));
  mkdirSync(join(root, 'etc/sub'), { recursive: true });
  writeFileSync(join(root, 'etc/file'), 'x');
});
afterEach(() => rmSync(root, { recursive: true, force: true }));

const res = (p: string, opts = {}) => resolveInRoot(root, p, 'r', 'f', opts);
const refused = (p: string, msg: RegExp, opts = {}): void => {
  expect(() => res(p, opts)).toThrow(msg);
};

describe('resolveInRoot', () => {
  it('plain, missing and "." / "//" components', () => {
    expect(res('/etc//./sub/new')).toMatchObject({
      hostPath: join(root, 'etc/sub/new'),
      targetPath: '/etc/sub/new',
      stat: undefined,
    });
    expect(res('/etc/file').stat?.isFile()).toBe(true);
    expect(res('/').targetPath).toBe('/');
  });

  it('".." that stays inside is resolved; above the root is refused', () => {
    expect(res('/etc/sub/../file').targetPath).toBe('/etc/file');
    expect(res('/missing/../etc/file').stat?.isFile()).toBe(true);
    refused('/..', /climbs above the root/);
    refused('/etc/../../x', /climbs above the root/);
  });

  it('symlinks inside the root are followed (relative, and absolute under the root)', () => {
    symlinkSync('sub', join(root, 'etc/rel'));
    symlinkSync(join(root, 'etc'), join(root, 'abs'));
    expect(res('/etc/rel/x').targetPath).toBe('/etc/sub/x');
    expect(res('/abs/sub/x').targetPath).toBe('/etc/sub/x');
  });

  it('symlinks leaving the root are refused, wherever they are in the path', () => {
    symlinkSync('/etc', join(root, 'hostetc'));
    symlinkSync('../../../../../../..', join(root, 'etc/up'));
    symlinkSync('/', join(root, 'slash'));
    refused('/hostetc/passwd', /\/hostetc is a symlink to \/etc, outside the root/);
    refused('/etc/up/x', /climbs above the root/);
    refused('/slash/x', /outside the root/);
  });

  it('the final component is not followed unless asked', () => {
    symlinkSync('/etc/shadow', join(root, 'etc/last'));
    expect(res('/etc/last').stat?.isSymbolicLink()).toBe(true);
    refused('/etc/last', /outside the root/, { followFinal: true });
  });

  it('loops and files used as directories are refused', () => {
    symlinkSync('b', join(root, 'a'));
    symlinkSync('a', join(root, 'b'));
    refused('/a/x', /too many levels of symlinks/);
    refused('/etc/file/x', /\/etc\/file exists and is not a directory/);
  });

  it('relative paths, NUL bytes and the empty path are refused', () => {
    refused('etc/x', /must be absolute/);
    refused('/etc/\0x', /NUL/);
    refused('', /non-empty/);
  });

  it('the overlay: planned directories and symlinks, checked like real ones', () => {
    const overlay: Overlay = new Map([
      ['srv', { type: 'dir' }],
      ['srv/link', { type: 'symlink', target: '/etc' }],
      ['srv/in', { type: 'symlink', target: '../etc/sub' }],
      ['srv/f', { type: 'file' }],
    ]);
    expect(res('/srv/in/x', { overlay }).targetPath).toBe('/etc/sub/x');
    refused('/srv/link/x', /outside the root/, { overlay });
    refused('/srv/f/x', /planned as a file, not a directory/, { overlay });
    expect(res('/srv/f', { overlay }).planned).toEqual({ type: 'file' });
  });

  it('realRoot wants an absolute, existing root', () => {
    expect(() => realRoot('relative')).toThrow(/absolute/);
    expect(() => realRoot(join(root, 'nope'))).toThrow(/cannot be used/);
    expect(realRoot(root)).toBe(root);
  });
});
