/**
 * A/B disk images for the update tests, made by the real sgdisk (Debian's gdisk, installed by
 * test/env/up.sh), and sgdisk's own reading of them to cross-check ours.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const SGDISK = ['/usr/sbin/sgdisk', '/sbin/sgdisk', '/usr/bin/sgdisk'].find((p) => existsSync(p));
/** Why the sgdisk tests skip; with TESTENV_REQUIRED=1 (CI) they run and fail instead. */
export const sgdiskMissing =
  SGDISK || process.env.TESTENV_REQUIRED === '1' ? false : 'sgdisk not installed (apt gdisk)';

export const USR_A_GUID = '7130c94a-213a-4e5a-8e26-6cce9662f132';
export const USR_B_GUID = 'e03dd35c-7c2d-4a47-b3fe-27f15780a57c';

export function sgdisk(...args: string[]): string {
  if (!SGDISK) throw new Error('sgdisk is not installed (apt-get install gdisk)');
  return execFileSync(SGDISK, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

export interface Scratch {
  dir: string;
  cleanup(): void;
}

export function scratch(): Scratch {
  const dir = mkdtempSync(join(tmpdir(), 'flotilla-update-'));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** A 64 MiB CoreOS-like disk: 1 EFI, 3 USR-A, 4 USR-B (8 MiB each, type 8500), 9 ROOT. */
export function coreosImage(path: string, opts: { labels?: [string, string] } = {}): string {
  writeFileSync(path, '');
  truncateSync(path, 64 * 1024 * 1024);
  const [a, b] = opts.labels ?? ['USR-A', 'USR-B'];
  sgdisk(
    '-o',
    '-n1:2048:+4M',
    '-t1:ef00',
    '-c1:EFI-SYSTEM',
    '-n3:0:+8M',
    '-t3:8500',
    `-c3:${a}`,
    `-u3:${USR_A_GUID}`,
    '-n4:0:+8M',
    '-t4:8500',
    `-c4:${b}`,
    `-u4:${USR_B_GUID}`,
    '-n9:0:+16M',
    '-c9:ROOT',
    // Fresh install: A priority 2 successful, B priority 1.
    '-A3:set:49',
    '-A3:set:56',
    '-A4:set:48',
    path,
  );
  return path;
}

/** sgdisk's view of one partition's attribute bits: the set of bit numbers. */
export function sgdiskBits(path: string, n: number): number[] {
  const out = sgdisk(`-A${n}:show`, path);
  return [...out.matchAll(/^\s*\d+:(\d+):1/gm)].map((m) => Number(m[1])).sort((x, y) => x - y);
}

/** sgdisk -i N: the fields we cross-check. */
export function sgdiskInfo(
  path: string,
  n: number,
): { name: string; guid: string; attrs: bigint; first: bigint; last: bigint } {
  const out = sgdisk(`-i${n}`, path);
  const field = (re: RegExp) => re.exec(out)?.[1] ?? '';
  return {
    name: field(/Partition name: '(.*)'/),
    guid: field(/Partition unique GUID: (\S+)/).toLowerCase(),
    attrs: BigInt('0x' + field(/Attribute flags: ([0-9a-fA-F]+)/)),
    first: BigInt(field(/First sector: (\d+)/)),
    last: BigInt(field(/Last sector: (\d+)/)),
  };
}
