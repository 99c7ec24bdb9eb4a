/**
 * First-boot gating, as Ignition gates its stages (host-tools.md §2.1): Ignition runs on the first
 * boot only and never again.
 *
 * flotilla's rule, checked by `firstBoot()` and mirrored by systemd/flotilla-ignition.service:
 *   - NOT first boot when `<root>/etc/.ignition-result.json` exists (Ignition's own record of a
 *     provisioned machine; flotilla writes it after the files stage succeeds);
 *   - otherwise first boot when the kernel command line carries `ignition.firstboot` (what GRUB
 *     appends on 3.x systems; also Container Linux's `coreos.first_boot` and Flatcar's
 *     `flatcar.first_boot`, where `0 no off false` and empty mean false), or the flag file
 *     `<root>/boot/flotilla/first-boot` exists (for images whose boot loader does not add the
 *     argument: touch it in the image, as `coreos/first_boot` was);
 *   - else not first boot.
 *
 * After success `recordResult()` writes the result file (0644: dates and counts, no config), the
 * applied, rendered config to `<root>/etc/flotilla/ignition/applied.json` (0600: it may hold
 * password hashes and file contents) and removes the flag file. To provision again, delete the
 * result file and touch the flag.
 */
import { existsSync, rmSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { PROC_CMDLINE } from '../datasource/cmdline.js';
import { writeAtomic } from '../lib/fs.js';
import type { IgnitionConfig } from './types.js';

export const RESULT_FILE = '/etc/.ignition-result.json';
export const FIRST_BOOT_FLAG = '/boot/flotilla/first-boot';
export const APPLIED_CONFIG = '/etc/flotilla/ignition/applied.json';

export interface GateOptions {
  /** The target root (default `/`). */
  root?: string;
  /** The kernel command line file (default /proc/cmdline). */
  cmdlinePath?: string;
}

export interface GateState {
  firstBoot: boolean;
  why: string;
}

const FALSE_WORDS = new Set(['0', 'no', 'off', 'false']);

/** True when the command line `text` marks a first boot. */
export function cmdlineFirstBoot(text: string): boolean {
  for (const word of text.split(/\s+/)) {
    const eq = word.indexOf('=');
    const key = eq < 0 ? word : word.slice(0, eq);
    const value = eq < 0 ? undefined : word.slice(eq + 1);
    if (key === 'ignition.firstboot') return value === undefined || !FALSE_WORDS.has(value.toLowerCase());
    if (key === 'coreos.first_boot' || key === 'flatcar.first_boot') {
      if (value !== undefined && value !== '' && !FALSE_WORDS.has(value.toLowerCase())) return true;
    }
  }
  return false;
}

/** Is this the first boot of `root`? */
export async function firstBoot(opts: GateOptions = {}): Promise<GateState> {
  const root = opts.root ?? '/';
  if (existsSync(join(root, RESULT_FILE))) {
    return { firstBoot: false, why: `already provisioned (${RESULT_FILE} exists)` };
  }
  let cmdline = '';
  try {
    cmdline = await readFile(opts.cmdlinePath ?? PROC_CMDLINE, 'utf8');
  } catch {
    /* no command line: only the flag file counts */
  }
  if (cmdlineFirstBoot(cmdline))
    return { firstBoot: true, why: 'ignition.firstboot on the kernel command line' };
  if (existsSync(join(root, FIRST_BOOT_FLAG))) return { firstBoot: true, why: `${FIRST_BOOT_FLAG} exists` };
  return {
    firstBoot: false,
    why: `not the first boot (no ignition.firstboot kernel argument, no ${FIRST_BOOT_FLAG})`,
  };
}

export interface ResultRecord {
  /** `ignition.version` of the config as given. */
  version: string;
  platform: string;
  userConfigProvided: boolean;
  changed: number;
  unchanged: number;
}

/** Record a successful provisioning of `root` so later boots skip Ignition. */
export function recordResult(
  root: string,
  result: ResultRecord,
  config: IgnitionConfig,
  now: Date = new Date(),
): void {
  writeAtomic(join(root, APPLIED_CONFIG), `${JSON.stringify(config, null, 2)}\n`, {
    mode: 0o600,
    mkdirMode: 0o700,
  });
  const record = {
    provisioningDate: now.toISOString(),
    userConfigProvided: result.userConfigProvided,
    flotilla: {
      configVersion: result.version,
      platform: result.platform,
      changed: result.changed,
      unchanged: result.unchanged,
      appliedConfig: APPLIED_CONFIG,
    },
  };
  writeAtomic(join(root, RESULT_FILE), `${JSON.stringify(record, null, 2)}\n`, {
    mode: 0o644,
    mkdirMode: 0o755,
  });
  rmSync(join(root, FIRST_BOOT_FLAG), { force: true });
}
