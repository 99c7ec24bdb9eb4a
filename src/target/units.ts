/**
 * systemd units in the target root, as coreos-cloudinit's processUnits leaves them:
 * - contents → /etc/systemd/system/NAME (runtime: /run/systemd/system/NAME), 0644 root;
 * - drop-ins → NAME.d/X.conf beside it;
 * - mask → NAME is a symlink to /dev/null there (replacing a file); a runtime unit that is not
 *   masked loses a /dev/null symlink ("ensuring runtime unit file is unmasked");
 * - enable → the links `systemctl enable` makes (install.ts), for the unit file we wrote or the
 *   first one found in the target's unit search path;
 * - networkd units (`.network`, `.netdev`, `.link`) go to /etc/systemd/network (runtime:
 *   /run/systemd/network); enable and command do not apply to them, a change restarts networkd
 *   on a live system.
 * The daemon-reload and the `command`s run later, once, on a live system (apply.ts).
 */
import { readFileSync, readlinkSync, rmSync } from 'node:fs';
import { basename, dirname } from 'node:path';
import { FlotillaError } from '../lib/errors.js';
import { UnitFile, validateUnitName } from '../unit/index.js';
import { applyFile, ensureParents, symlinkAtomic } from './files.js';
import { installLinks, type InstallLink } from './install.js';
import { resolveInRoot, targetError } from './paths.js';
import type { UnitAction } from './types.js';

export const UNIT_COMMANDS = [
  'start',
  'stop',
  'restart',
  'reload',
  'try-restart',
  'reload-or-restart',
  'reload-or-try-restart',
] as const;
export type UnitCommand = (typeof UNIT_COMMANDS)[number];

const NETWORK_SUFFIXES = ['network', 'netdev', 'link'];
/** The systemd unit search path (system units), in systemd's order, where an existing unit is looked up. */
const SEARCH_PATH = [
  '/etc/systemd/system',
  '/run/systemd/system',
  '/usr/local/lib/systemd/system',
  '/usr/lib/systemd/system',
  '/lib/systemd/system',
];
const DROP_IN = /^[A-Za-z0-9:_.@\\-]+\.conf$/;
const ROOT_IDS = { uid: 0, gid: 0 };

export function isNetworkUnit(name: string): boolean {
  return NETWORK_SUFFIXES.includes(name.slice(name.lastIndexOf('.') + 1));
}

/** The directory a unit action writes into (inside the target). */
export function unitDir(a: UnitAction): string {
  if (isNetworkUnit(a.name)) return a.runtime ? '/run/systemd/network' : '/etc/systemd/network';
  return a.runtime ? '/run/systemd/system' : '/etc/systemd/system';
}

function wrap(reason: string, field: string, err: unknown): FlotillaError {
  return targetError(reason, field, (err as Error).message);
}

/** Pure checks of one unit action: names, bodies, drop-ins, command, combinations. */
export function checkUnit(a: UnitAction, reason: string): void {
  if (typeof a.name !== 'string') throw targetError(reason, 'name', 'must be a string');
  if (isNetworkUnit(a.name)) {
    const base = a.name.slice(0, a.name.lastIndexOf('.'));
    if (!/^[A-Za-z0-9:_.@\\-]+$/.test(base) || base.startsWith('.')) {
      throw targetError(reason, 'name', `invalid networkd unit name ${JSON.stringify(a.name)}`);
    }
    if (a.mask) throw targetError(reason, 'mask', `networkd unit ${a.name} cannot be masked`);
    if (a.dropIns?.length) throw targetError(reason, 'drop_ins', `networkd unit ${a.name} takes no drop-ins`);
  } else {
    try {
      validateUnitName(a.name);
    } catch (err) {
      throw wrap(reason, 'name', err);
    }
  }
  if (a.contents !== undefined) {
    if (typeof a.contents !== 'string') throw targetError(reason, 'content', 'must be a string');
    try {
      UnitFile.parse(a.contents);
    } catch (err) {
      throw wrap(reason, 'content', err);
    }
  }
  (a.dropIns ?? []).forEach((d, i) => {
    const field = `drop_ins[${i}]`;
    if (typeof d?.name !== 'string' || !DROP_IN.test(d.name) || d.name.startsWith('.')) {
      throw targetError(
        reason,
        `${field}.name`,
        `invalid drop-in name ${JSON.stringify(d?.name)} (NAME.conf)`,
      );
    }
    try {
      UnitFile.parse(d.contents);
    } catch (err) {
      throw wrap(reason, `${field}.content`, err);
    }
  });
  if (a.mask && a.enable)
    throw targetError(reason, 'enable', `${a.name} cannot be masked and enabled at once`);
  if (a.command !== undefined && !(UNIT_COMMANDS as readonly string[]).includes(a.command)) {
    throw targetError(
      reason,
      'command',
      `unknown command ${JSON.stringify(a.command)} (${UNIT_COMMANDS.join(', ')})`,
    );
  }
}

/** Where `name`'s file may be inside the target, in lookup order (an instance falls back to its template). */
export function unitFileCandidates(name: string): string[] {
  const at = name.indexOf('@');
  const dot = name.lastIndexOf('.');
  const template = at !== -1 && at + 1 < dot ? `${name.slice(0, at + 1)}${name.slice(dot)}` : undefined;
  const out: string[] = [];
  for (const n of template ? [name, template] : [name])
    for (const dir of SEARCH_PATH) out.push(`${dir}/${n}`);
  return out;
}

/** Refuses to enable a masked unit (systemctl: "Unit file … is masked"). */
export function refuseMasked(
  name: string,
  path: string,
  reason: string,
  linkTarget: string | undefined,
): void {
  if (linkTarget === '/dev/null') {
    throw targetError(reason, 'enable', `${name} is masked (${path} is a symlink to /dev/null)`);
  }
}

function readIfFile(root: string, name: string, path: string, reason: string): string | undefined {
  const link = resolveInRoot(root, path, reason, 'enable');
  refuseMasked(name, path, reason, link.stat?.isSymbolicLink() ? readlinkSync(link.hostPath) : undefined);
  const r = resolveInRoot(root, path, reason, 'enable', { followFinal: true });
  if (!r.stat?.isFile()) return undefined;
  return readFileSync(r.hostPath, 'utf8');
}

/** The unit's file inside the target (path and text) for enabling: ours, else the search path's first. */
function findUnitFile(
  root: string,
  name: string,
  reason: string,
  own?: { path: string; text: string },
): { path: string; text: string } | undefined {
  if (own) return own;
  for (const path of unitFileCandidates(name)) {
    const text = readIfFile(root, name, path, reason);
    if (text !== undefined) return { path, text };
  }
  return undefined;
}

function applyLinkIfNeeded(root: string, l: InstallLink, reason: string): boolean {
  const r = resolveInRoot(root, l.path, reason, 'enable');
  if (r.stat?.isSymbolicLink()) {
    if (readlinkSync(r.hostPath) === l.target) return false;
  } else if (r.stat !== undefined) {
    throw targetError(reason, 'enable', `${l.path} exists and is not a symlink`);
  }
  ensureParents(root, r.targetPath, reason, 'enable');
  symlinkAtomic(r.hostPath, l.target, ROOT_IDS);
  return true;
}

/** Enables `name` (and its Also= units) into `dir`; true when a link was created or replaced. */
function enable(
  root: string,
  name: string,
  dir: string,
  reason: string,
  own: { path: string; text: string } | undefined,
  seen: Set<string>,
  targets?: string[],
): boolean {
  if (seen.has(name)) return false;
  seen.add(name);
  const file = findUnitFile(root, name, reason, own);
  if (!file) throw targetError(reason, 'enable', `no unit file for ${name} in the target`);
  let info;
  try {
    info = installLinks(name, file.text, file.path, dir);
  } catch (err) {
    throw wrap(reason, 'enable', err);
  }
  let changed = false;
  for (const l of info.links) {
    changed = applyLinkIfNeeded(root, l, reason) || changed;
    const dep = /^(.+)\.(?:wants|requires|upholds)$/.exec(basename(dirname(l.path)));
    if (targets && dep?.[1] && !targets.includes(dep[1])) targets.push(dep[1]);
  }
  for (const also of info.also) changed = enable(root, also, dir, reason, undefined, seen) || changed;
  return changed;
}

export interface UnitOutcome {
  changed: boolean;
  network: boolean;
  /** The units whose `.wants/`, `.requires/` or `.upholds/` the unit was enabled into (WantedBy= …). */
  enabledInto: string[];
}

/** Applies one unit action's files and links (no systemd calls). */
export function applyUnit(root: string, a: UnitAction, reason: string): UnitOutcome {
  const dir = unitDir(a);
  const path = `${dir}/${a.name}`;
  const network = isNetworkUnit(a.name);
  let changed = false;
  if (a.mask) {
    const r = resolveInRoot(root, path, reason, 'mask');
    if (r.stat?.isDirectory()) throw targetError(reason, 'mask', `${path} is a directory`);
    if (!(r.stat?.isSymbolicLink() && readlinkSync(r.hostPath) === '/dev/null')) {
      ensureParents(root, r.targetPath, reason, 'mask');
      symlinkAtomic(r.hostPath, '/dev/null', ROOT_IDS);
      changed = true;
    }
  } else if (a.contents !== undefined) {
    // A masked or linked unit: the atomic write renames our file over the link itself.
    const file = { kind: 'file' as const, path, contents: Buffer.from(a.contents, 'utf8'), mode: 0o644 };
    changed = applyFile(root, file, ROOT_IDS, reason) || changed;
  } else if (a.runtime) {
    const r = resolveInRoot(root, path, reason, 'name');
    if (r.stat?.isSymbolicLink() && readlinkSync(r.hostPath) === '/dev/null') {
      rmSync(r.hostPath);
      changed = true;
    }
  }
  for (const d of a.dropIns ?? []) {
    const file = {
      kind: 'file' as const,
      path: `${path}.d/${d.name}`,
      contents: Buffer.from(d.contents, 'utf8'),
      mode: 0o644,
    };
    changed = applyFile(root, file, ROOT_IDS, reason) || changed;
  }
  const enabledInto: string[] = [];
  if (a.enable && !network) {
    const own = a.contents !== undefined ? { path, text: a.contents } : undefined;
    changed = enable(root, a.name, dir, reason, own, new Set(), enabledInto) || changed;
  }
  return { changed, network, enabledInto };
}
