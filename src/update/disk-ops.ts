/**
 * The slot flags on a real disk: open the disk's GPT, find the A/B pair, tell which slot is
 * booted, and commit a flags change to the GPT and (when configured) to grubenv. The pure rules
 * live in slots.ts; this is their thin executor, used by the writer, mark-good and rollback.
 */
import { readFileSync } from 'node:fs';
import { FlotillaError } from '../lib/errors.js';
import { openDisk, readGpt, writeGpt, type Disk, type Gpt } from './gpt.js';
import { foldGrubTries, readGrubEnv, slotVars, writeGrubEnv } from './grub.js';
import {
  applyFlags,
  findSlots,
  flagsOf,
  markGood,
  rollback,
  type Flags,
  type Slot,
  type SlotName,
} from './slots.js';

export interface SlotDisk {
  disk: Disk;
  gpt: Gpt;
  slots: [Slot, Slot];
  /** GPT flags with GRUB's tries decrements folded in. */
  flags: Flags;
  grubenv?: string;
}

export async function openSlotDisk(
  path: string,
  opts: { grubenv?: string; writable?: boolean } = {},
): Promise<SlotDisk> {
  const disk = await openDisk(path, { writable: opts.writable ?? true });
  try {
    const gpt = await readGpt(disk);
    const slots = findSlots(gpt, path);
    const env = opts.grubenv ? await readGrubEnv(opts.grubenv) : undefined;
    return {
      disk,
      gpt,
      slots,
      flags: foldGrubTries(flagsOf(slots), env),
      ...(opts.grubenv ? { grubenv: opts.grubenv } : {}),
    };
  } catch (err) {
    await disk.close();
    throw err;
  }
}

/** Write new flags: GPT (backup then primary, fsynced), then the grubenv mirror. */
export async function commitFlags(sd: SlotDisk, flags: Flags): Promise<void> {
  const gpt = applyFlags(sd.gpt, sd.slots, flags);
  await writeGpt(sd.disk, gpt);
  sd.gpt = gpt;
  sd.flags = flags;
  if (sd.grubenv) await writeGrubEnv(sd.grubenv, slotVars(sd.slots, flags));
}

export function slotBytes(sd: SlotDisk, name: SlotName): { offset: number; size: number } {
  const p = sd.slots.find((s) => s.name === name)!.partition;
  return {
    offset: Number(p.firstLba) * sd.gpt.sectorSize,
    size: Number(p.lastLba - p.firstLba + 1n) * sd.gpt.sectorSize,
  };
}

/**
 * The booted slot from the kernel command line: `flotilla.slot=a|b` (our grub.cfg), else the
 * PARTUUID in `mount.usr=` (CoreOS) or `root=` matched against the slots. Undefined when none says.
 */
export function bootedFromCmdline(cmdline: string, slots: readonly Slot[]): SlotName | undefined {
  const words = cmdline.trim().split(/\s+/);
  for (const w of words) {
    const m = /^flotilla\.slot=([ab])$/i.exec(w);
    if (m) return m[1]!.toUpperCase() as SlotName;
  }
  for (const w of words) {
    const m = /^(?:mount\.usr|usr|root)=PARTUUID=([0-9a-fA-F-]{36})$/.exec(w);
    if (!m) continue;
    const s = slots.find((x) => x.partition.uniqueGuid.toLowerCase() === m[1]!.toLowerCase());
    if (s) return s.name;
  }
  return undefined;
}

/** Which slot runs now: `given` (a flag), else /proc/cmdline; E_UPDATE_SLOTS when it cannot be told. */
export function bootedSlot(sd: SlotDisk, given?: string, cmdlineFile = '/proc/cmdline'): SlotName {
  if (given !== undefined) {
    const g = given.toUpperCase();
    if (g !== 'A' && g !== 'B')
      throw new FlotillaError('E_USAGE', `booted slot must be A or B, not ${given}`);
    return g;
  }
  let cmdline = '';
  try {
    cmdline = readFileSync(cmdlineFile, 'utf8');
  } catch {
    /* no /proc: fall through */
  }
  const b = bootedFromCmdline(cmdline, sd.slots);
  if (!b)
    throw new FlotillaError(
      'E_UPDATE_SLOTS',
      `${sd.disk.path}: cannot tell which slot is booted (no flotilla.slot= or a slot's PARTUUID on the kernel command line); pass --booted A|B`,
    );
  return b;
}

/** mark-good on disk: the booted slot becomes successful and top priority. */
export async function markGoodOnDisk(sd: SlotDisk, booted: SlotName): Promise<Flags> {
  const next = markGood(sd.flags, booted);
  await commitFlags(sd, next);
  return next;
}

/** rollback on disk: the other (good) slot boots next. */
export async function rollbackOnDisk(sd: SlotDisk, booted: SlotName): Promise<Flags> {
  const next = rollback(sd.flags, booted);
  await commitFlags(sd, next);
  return next;
}
