/**
 * A/B slots on a GPT disk and the pure rules over their boot flags: which slot boots (gptprio),
 * what an installed update, a healthy boot and a rollback change (cgpt add/prioritize), and the
 * `cgpt show`-style listing.
 *
 * Slots are CoreOS's USR-A/USR-B (type coreos-usr) or a Debian VM's root-a/root-b (any type),
 * matched by label, case-insensitively.
 */
import { FlotillaError } from '../lib/errors.js';
import { bootFlags, withBootFlags, type BootFlags, type Gpt, type GptPartition } from './gpt.js';

export const COREOS_USR_TYPE = '5dfbf5f4-2848-4bac-aa5e-0d9a20b745a6';

export type SlotName = 'A' | 'B';

export interface Slot extends BootFlags {
  name: SlotName;
  partition: GptPartition;
}

const LABELS: Record<string, SlotName> = { 'usr-a': 'A', 'usr-b': 'B', 'root-a': 'A', 'root-b': 'B' };

/** The two slots of a disk, A first; E_UPDATE_SLOTS when it has not exactly one of each. */
export function findSlots(gpt: Gpt, disk = 'disk'): [Slot, Slot] {
  const found: Partial<Record<SlotName, Slot>> = {};
  for (const p of gpt.partitions) {
    const name = LABELS[p.label.toLowerCase()];
    if (!name) continue;
    if (found[name])
      throw new FlotillaError('E_UPDATE_SLOTS', `${disk}: two partitions are labelled as slot ${name}`);
    found[name] = { name, partition: p, ...bootFlags(p.attributes) };
  }
  if (!found.A || !found.B) {
    const labels = gpt.partitions.map((p) => p.label || `#${p.number}`).join(', ') || 'none';
    throw new FlotillaError(
      'E_UPDATE_SLOTS',
      `${disk}: no A/B slot pair (want partitions labelled USR-A and USR-B, or root-a and root-b; found ${labels})`,
      { disk },
    );
  }
  return [found.A, found.B];
}

export function other(name: SlotName): SlotName {
  return name === 'A' ? 'B' : 'A';
}

export type Flags = Record<SlotName, BootFlags>;

export function flagsOf(slots: readonly Slot[]): Flags {
  const f = {} as Flags;
  for (const s of slots) f[s.name] = { priority: s.priority, tries: s.tries, successful: s.successful };
  return f;
}

/** A boot decision: which slot, and the flags after the boot loader's decrement. */
export interface BootChoice {
  slot: SlotName;
  /** This is a trial boot (the slot had tries left and was not yet good). */
  trial: boolean;
  after: Flags;
}

/**
 * gptprio's rule: the highest priority slot with tries > 0 or successful; on a tie the first in
 * table order (A). A slot with tries > 0 has them decremented (even when successful, as gptprio
 * does). Undefined when no slot can boot ("no such partition").
 */
export function chooseBoot(flags: Flags): BootChoice | undefined {
  let best: SlotName | undefined;
  for (const name of ['A', 'B'] as const) {
    const f = flags[name];
    if (f.priority === 0 || !(f.tries > 0 || f.successful)) continue;
    if (!best || f.priority > flags[best].priority) best = name;
  }
  if (!best) return undefined;
  const f = flags[best];
  const after: Flags = { ...flags, [best]: { ...f, tries: Math.max(0, f.tries - 1) } };
  return { slot: best, trial: f.tries > 0 && !f.successful, after };
}

/**
 * cgpt prioritize with two slots: the target goes to the top. Priority-0 slots stay 0 unless the
 * target is the one being raised; the result is target 2, other 1 (or 0 when it was 0).
 */
export function prioritize(flags: Flags, target: SlotName): Flags {
  const o = other(target);
  return {
    ...flags,
    [target]: { ...flags[target], priority: 2 },
    [o]: { ...flags[o], priority: flags[o].priority === 0 ? 0 : 1 },
  };
}

/** Before a byte is written to the passive slot: it becomes unbootable. */
export function markWriting(flags: Flags, passive: SlotName): Flags {
  return { ...flags, [passive]: { priority: 0, tries: 0, successful: false } };
}

/** After the passive slot is written and verified (postinst: cgpt add -S0 -T1, prioritize). */
export function markInstalled(flags: Flags, passive: SlotName): Flags {
  const active = other(passive);
  const withActive = {
    ...flags,
    [active]: { ...flags[active], priority: Math.max(1, flags[active].priority) },
  };
  return prioritize({ ...withActive, [passive]: { priority: 1, tries: 1, successful: false } }, passive);
}

/** A healthy boot of `booted` (setgoodroot: cgpt add -S1 -T0, prioritize). */
export function markGood(flags: Flags, booted: SlotName): Flags {
  return prioritize({ ...flags, [booted]: { ...flags[booted], successful: true, tries: 0 } }, booted);
}

/** Roll back to the other slot, which must be good; the current one stays bootable below it. */
export function rollback(flags: Flags, booted: SlotName): Flags {
  const target = other(booted);
  if (!flags[target].successful) {
    throw new FlotillaError(
      'E_UPDATE_SLOTS',
      `slot ${target} was never marked successful: refusing to roll back to it`,
    );
  }
  return prioritize(
    { ...flags, [booted]: { ...flags[booted], priority: Math.max(1, flags[booted].priority) } },
    target,
  );
}

/** The partitions with the given flags applied to the slots' attribute bits. */
export function applyFlags(gpt: Gpt, slots: readonly Slot[], flags: Flags): Gpt {
  const byNumber = new Map(slots.map((s) => [s.partition.number, s.name]));
  return {
    ...gpt,
    partitions: gpt.partitions.map((p) => {
      const name = byNumber.get(p.number);
      return name ? { ...p, attributes: withBootFlags(p.attributes, flags[name]) } : p;
    }),
  };
}

/** `cgpt show`-style blocks: one per partition, with label and (for slots) the boot flags. */
export function formatSlots(gpt: Gpt, disk: string): string {
  const pad = (v: string | number, n: number) => String(v).padStart(n);
  const lines = [`       start        size    part  contents   (${disk})`];
  for (const p of gpt.partitions) {
    const size = p.lastLba - p.firstLba + 1n;
    lines.push(
      `${pad(p.firstLba.toString(), 12)}${pad(size.toString(), 12)}${pad(p.number, 8)}  Label: "${p.label}"`,
    );
    lines.push(`${' '.repeat(34)}Type: ${p.typeGuid === COREOS_USR_TYPE ? 'coreos-usr' : p.typeGuid}`);
    lines.push(`${' '.repeat(34)}UUID: ${p.uniqueGuid.toUpperCase()}`);
    if (LABELS[p.label.toLowerCase()]) {
      const f = bootFlags(p.attributes);
      lines.push(
        `${' '.repeat(34)}Attr: priority=${f.priority} tries=${f.tries} successful=${f.successful ? 1 : 0}`,
      );
    }
  }
  return lines.join('\n') + '\n';
}
