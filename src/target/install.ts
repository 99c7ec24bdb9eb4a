/**
 * What `systemctl enable` makes, computed by us so it works in `--root` trees without systemd:
 * for a unit file's [Install] section,
 * - `WantedBy=T` → `DIR/T.wants/NAME` → the unit's file;
 * - `RequiredBy=T` → `DIR/T.requires/NAME` → the unit's file;
 * - `Alias=A` → `DIR/A` → the unit's file;
 * - `Also=U` → U is enabled too;
 * where DIR is /etc/systemd/system (or /run/systemd/system for `--runtime`), link targets are the
 * unit's absolute path inside the target (as systemctl writes them), and NAME is the unit, or for a
 * template `a@.service` the instance `a@DefaultInstance.service` (none without DefaultInstance=).
 * Values are whitespace-separated lists; an empty assignment resets the list; `%n %N %p %i %%` are
 * expanded for the enabled name. Pure.
 */
import { FlotillaError } from '../lib/errors.js';
import { UnitFile, expandSpecifiers, parseUnitName, validateUnitName } from '../unit/index.js';

export interface InstallLink {
  /** Absolute path of the symlink inside the target. */
  path: string;
  /** What it points to: the unit file's absolute path inside the target. */
  target: string;
}

export interface InstallInfo {
  links: InstallLink[];
  /** `Also=` units to enable as well. */
  also: string[];
  /** True when the unit has no [Install] options (systemctl: "no installation config"). */
  empty: boolean;
}

function list(unit: UnitFile, key: string): string[] {
  let out: string[] = [];
  for (const v of unit.getAll('Install', key)) {
    if (v.trim() === '') out = [];
    else out.push(...v.split(/\s+/).filter((s) => s !== ''));
  }
  return out;
}

function expand(value: string, enabledName: string): string {
  const info = parseUnitName(enabledName);
  return value
    .split('%%')
    .map((part) => expandSpecifiers(part, info))
    .join('%');
}

function checkName(n: string, key: string, unit: string): string {
  try {
    validateUnitName(n);
  } catch (err) {
    throw new FlotillaError('E_TARGET', `[Install] ${key}=${n} of ${unit}: ${(err as Error).message}`, {
      unit,
      key,
    });
  }
  return n;
}

/**
 * The links enabling `name` whose file (inside the target) is `unitPath`, with `text` its contents,
 * into `dir` (/etc/systemd/system or /run/systemd/system). Throws E_UNIT_PARSE for a bad body and
 * E_TARGET for an invalid unit name in [Install].
 */
export function installLinks(name: string, text: string, unitPath: string, dir: string): InstallInfo {
  const unit = UnitFile.parse(text);
  const info = parseUnitName(name);
  const empty = !unit.options.some((o) => o.section === 'Install');
  let enabled: string | undefined = name;
  if (info.isTemplate) {
    const def = unit.get('Install', 'DefaultInstance');
    enabled = def ? `${info.prefix}@${def}.${info.suffix}` : undefined;
  }
  const links: InstallLink[] = [];
  for (const a of list(unit, 'Alias')) {
    const alias = checkName(expand(a, name), 'Alias', name);
    links.push({ path: `${dir}/${alias}`, target: unitPath });
  }
  if (enabled !== undefined) {
    for (const [key, suffix] of [
      ['WantedBy', 'wants'],
      ['RequiredBy', 'requires'],
    ] as const) {
      for (const t of list(unit, key)) {
        const target = checkName(expand(t, enabled), key, name);
        links.push({ path: `${dir}/${target}.${suffix}/${enabled}`, target: unitPath });
      }
    }
  }
  const also = list(unit, 'Also').map((u) => checkName(expand(u, name), 'Also', name));
  return { links, also, empty };
}
