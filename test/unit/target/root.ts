/**
 * Temporary target roots for the executor tests, seeded with a minimal account database in the
 * format of Debian's base-passwd (passwd.master / group.master, installed with "x"), plus shadow
 * and gshadow as debootstrap leaves them. The tests run real shadow-utils with --root, so they need
 * root; without it they are skipped (TESTENV_REQUIRED=1 turns that into a failure).
 */
import { spawnSync } from 'node:child_process';
import { lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const PASSWD = `root:x:0:0:root:/root:/bin/bash
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin
bin:x:2:2:bin:/bin:/usr/sbin/nologin
sys:x:3:3:sys:/dev:/usr/sbin/nologin
www-data:x:33:33:www-data:/var/www:/usr/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin
`;
const GROUP = `root:x:0:
daemon:x:1:
bin:x:2:
sys:x:3:
adm:x:4:
sudo:x:27:
www-data:x:33:
docker:x:998:
users:x:100:
nogroup:x:65534:
`;

function shadowOf(passwd: string, group: boolean): string {
  return passwd
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => (group ? `${l.split(':')[0]}:*::\n` : `${l.split(':')[0]}:*:19000:0:99999:7:::\n`))
    .join('');
}

export function unavailable(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root (real useradd/chown into a temporary root)';
  for (const t of ['useradd', 'usermod', 'groupadd', 'chpasswd', 'chgpasswd']) {
    if (spawnSync(t, ['--help'], { stdio: 'ignore' }).error) return `${t} is not installed`;
  }
  return undefined;
}

export const why = unavailable();
if (why && process.env.TESTENV_REQUIRED === '1') {
  throw new Error(`target executor tests: ${why} (TESTENV_REQUIRED=1 forbids skipping)`);
}

export interface TestRoot {
  dir: string;
  /** Host path of a target path. */
  at(p: string): string;
  read(p: string): string;
  exists(p: string): boolean;
  /** Every path in the tree with type, mode, owner, size and mtime: equal snapshots = nothing written. */
  snapshot(): string;
  cleanup(): void;
}

export function makeRoot(): TestRoot {
  const dir = mkdtempSync(join(tmpdir(), 'flotilla-target-'));
  mkdirSync(join(dir, 'etc'), { mode: 0o755 });
  mkdirSync(join(dir, 'home'), { mode: 0o755 });
  mkdirSync(join(dir, 'root'), { mode: 0o700 });
  writeFileSync(join(dir, 'etc/passwd'), PASSWD, { mode: 0o644 });
  writeFileSync(join(dir, 'etc/group'), GROUP, { mode: 0o644 });
  writeFileSync(join(dir, 'etc/shadow'), shadowOf(PASSWD, false), { mode: 0o640 });
  writeFileSync(join(dir, 'etc/gshadow'), shadowOf(GROUP, true), { mode: 0o640 });
  const at = (p: string): string => join(dir, p);
  const walk = (rel: string, out: string[]): void => {
    const st = lstatSync(join(dir, rel));
    const type = st.isDirectory() ? 'd' : st.isSymbolicLink() ? 'l' : 'f';
    out.push(`${rel} ${type} ${(st.mode & 0o7777).toString(8)} ${st.uid}:${st.gid} ${st.size} ${st.mtimeMs}`);
    if (st.isDirectory()) {
      for (const n of readdirSync(join(dir, rel)).sort()) walk(rel === '' ? n : `${rel}/${n}`, out);
    }
  };
  return {
    dir,
    at,
    read: (p) => readFileSync(at(p), 'utf8'),
    exists: (p) => {
      try {
        lstatSync(at(p));
        return true;
      } catch {
        return false;
      }
    },
    snapshot: () => {
      const out: string[] = [];
      walk('', out);
      return out.join('\n');
    },
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}

/** The E_TARGET error a promise rejects with (fails the test when it resolves or fails otherwise). */
export async function targetError(p: Promise<unknown>): Promise<Error & { code: string }> {
  const err = await p.then(
    () => new Error('expected a rejection'),
    (e: unknown) => e as Error,
  );
  if ((err as { code?: unknown }).code !== 'E_TARGET') throw err;
  return err as Error & { code: string };
}
