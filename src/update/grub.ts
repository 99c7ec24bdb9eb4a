/**
 * Stock GRUB (Debian's) cannot read GPT attribute bits, so the slots' boot flags are mirrored into
 * GRUB's environment block, and a grub.cfg snippet (`flotillaGrubCfg`, shipped as
 * grub/flotilla-ab.cfg) picks the slot by gptprio's rule and decrements the trial counter with
 * save_env. The GPT stays the record: flotilla writes both, and folds GRUB's decrements back into
 * the GPT (`foldGrubTries`) before it decides anything.
 *
 * grubenv format (GRUB's documented env block): exactly 1024 bytes, the line
 * `# GRUB Environment Block`, then `name=value` lines, padded with `#`.
 */
import { open, rename } from 'node:fs/promises';
import { dirname } from 'node:path';
import { FlotillaError } from '../lib/errors.js';
import type { BootFlags } from './gpt.js';
import type { Flags, Slot, SlotName } from './slots.js';

export const GRUBENV_SIZE = 1024;
const MAGIC = '# GRUB Environment Block\n';

const escape = (v: string) => v.replace(/\\/g, '\\\\');

/** Encode variables as a 1024-byte env block; E_CONFIG when they do not fit or a name is bad. */
export function encodeGrubEnv(vars: Record<string, string>): Buffer {
  let body = MAGIC;
  for (const [k, v] of Object.entries(vars)) {
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(k))
      throw new FlotillaError('E_CONFIG', `grubenv: bad variable name ${k}`);
    if (/[\n\r]/.test(v)) throw new FlotillaError('E_CONFIG', `grubenv: ${k} has a newline`);
    body += `${k}=${escape(v)}\n`;
  }
  const bytes = Buffer.from(body, 'utf8');
  if (bytes.length > GRUBENV_SIZE)
    throw new FlotillaError('E_CONFIG', `grubenv: ${bytes.length} bytes, over 1024`);
  return Buffer.concat([bytes, Buffer.alloc(GRUBENV_SIZE - bytes.length, '#')]);
}

export function decodeGrubEnv(buf: Buffer): Record<string, string> {
  const text = buf.toString('utf8');
  if (!text.startsWith(MAGIC)) throw new FlotillaError('E_CONFIG', 'grubenv: not a GRUB environment block');
  const out: Record<string, string> = {};
  for (const line of text.slice(MAGIC.length).split('\n')) {
    const eq = line.indexOf('=');
    if (line.startsWith('#') || eq < 1) continue;
    out[line.slice(0, eq)] = line.slice(eq + 1).replace(/\\(.)/g, '$1');
  }
  return out;
}

/** Write the env block atomically: tmp file, fsync, rename, directory fsync. */
export async function writeGrubEnv(path: string, vars: Record<string, string>): Promise<void> {
  const block = encodeGrubEnv(vars);
  const tmp = `${path}.flotilla-tmp`;
  const fh = await open(tmp, 'w', 0o644);
  try {
    await fh.writeFile(block);
    await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(tmp, path);
  const dir = await open(dirname(path), 'r');
  try {
    await dir.sync();
  } finally {
    await dir.close();
  }
}

export async function readGrubEnv(path: string): Promise<Record<string, string> | undefined> {
  let fh;
  try {
    fh = await open(path, 'r');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  try {
    return decodeGrubEnv(await fh.readFile());
  } finally {
    await fh.close();
  }
}

/** The variables the snippet reads, for the slots' flags. */
export function slotVars(slots: readonly Slot[], flags: Flags, disk = 'hd0'): Record<string, string> {
  const vars: Record<string, string> = { flotilla_disk: disk };
  for (const s of slots) {
    const n = s.name.toLowerCase();
    const f = flags[s.name];
    vars[`flotilla_${n}_priority`] = String(f.priority);
    vars[`flotilla_${n}_tries`] = String(f.tries);
    vars[`flotilla_${n}_ok`] = f.successful ? '1' : '0';
    vars[`flotilla_${n}_part`] = String(s.partition.number);
    vars[`flotilla_${n}_partuuid`] = s.partition.uniqueGuid;
  }
  return vars;
}

/** GRUB only ever decrements tries: take the lower count of GPT and grubenv for each slot. */
export function foldGrubTries(flags: Flags, env: Record<string, string> | undefined): Flags {
  if (!env) return flags;
  const out = { ...flags };
  for (const name of ['A', 'B'] as SlotName[]) {
    const t = Number(env[`flotilla_${name.toLowerCase()}_tries`]);
    const f: BootFlags = flags[name];
    if (Number.isInteger(t) && t >= 0 && t < f.tries) out[name] = { ...f, tries: t };
  }
  return out;
}

/** The grub.cfg snippet (our own text). `grub/flotilla-ab.cfg` is this, and a test keeps them equal. */
export function flotillaGrubCfg(): string {
  const decrement = (n: string) => {
    const lines = [];
    for (let t = 15; t >= 1; t--) {
      lines.push(
        `  ${t === 15 ? 'if' : 'elif'} [ "\${flotilla_${n}_tries}" = ${t} ]; then set flotilla_${n}_tries=${t - 1}`,
      );
    }
    return `${lines.join('\n')}\n  fi\n  save_env flotilla_${n}_tries`;
  };
  const bootable = (n: string) =>
    `[ "\${flotilla_${n}_priority}" -gt 0 -a ( "\${flotilla_${n}_tries}" -gt 0 -o "\${flotilla_${n}_ok}" = 1 ) ]`;
  const entry = (n: string, N: string) => `menuentry "flotilla slot ${N}" --id flotilla-${n} {
  set root=(\${flotilla_disk},gpt\${flotilla_${n}_part})
  linux /vmlinuz root=PARTUUID=\${flotilla_${n}_partuuid} ro panic=10 flotilla.slot=${n} \${flotilla_cmdline}
  initrd /initrd.img
}`;
  return `# flotilla A/B slot selection for stock GRUB. flotilla mirrors the GPT boot flags of the two
# slots into grubenv; this picks the slot the way CoreOS's gptprio did: the highest priority slot
# with tries > 0 or marked good (A wins a tie), takes one try from it, and falls back to the other
# slot when the chosen one cannot be loaded. A kernel that panics reboots (panic=10) into a slot
# with one try less; a trial slot whose try is used up without flotilla marking it good is skipped.
set flotilla_disk=hd0
set flotilla_a_priority=0
set flotilla_a_tries=0
set flotilla_a_ok=0
set flotilla_b_priority=0
set flotilla_b_tries=0
set flotilla_b_ok=0
load_env
set flotilla_slot=
if ${bootable('a')}; then set flotilla_slot=a; fi
if ${bootable('b')}; then
  if [ -z "\${flotilla_slot}" ]; then set flotilla_slot=b
  elif [ "\${flotilla_b_priority}" -gt "\${flotilla_a_priority}" ]; then set flotilla_slot=b; fi
fi
if [ "\${flotilla_slot}" = a ]; then
${decrement('a')}
  set default=flotilla-a
  set fallback=flotilla-b
elif [ "\${flotilla_slot}" = b ]; then
${decrement('b')}
  set default=flotilla-b
  set fallback=flotilla-a
else
  # No slot qualifies (gptprio: "no such partition"): try A, then B, rather than not boot.
  set default=flotilla-a
  set fallback=flotilla-b
fi
${entry('a', 'A')}
${entry('b', 'B')}
`;
}
