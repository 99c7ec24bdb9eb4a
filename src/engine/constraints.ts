/**
 * The `[X-Fleet]` placement rules as small pure predicates, shared by the engine's scheduler and
 * the agent's desired-state helper so both sides agree on what may run where (fleet
 * `agent/state.go` AbleToRun, `machine/machine.go` HasMetadata and MatchID).
 */
import { globMatch } from '../unit/glob.js';

/** A unit's name and the rule lists that relate it to other units. */
export interface UnitRules {
  name: string;
  conflicts: readonly string[];
  replaces: readonly string[];
}

/** How fleet shows a machine ID in messages: the first 8 characters and `...`. */
export function shortMachineID(id: string): string {
  return id.length > 8 ? `${id.slice(0, 8)}...` : id;
}

/**
 * fleet `MachineState.MatchID`: `MachineID=` holds the full ID or its 8-character short form (the
 * docs ask for the full ID; the code has always accepted the short one).
 */
export function machineIDMatches(wanted: string, machineID: string): boolean {
  return (
    wanted === machineID || (wanted.length === 8 && machineID.length > 8 && machineID.startsWith(wanted))
  );
}

/**
 * fleet `HasMetadata`: the machine must have every required key, with a value among that key's
 * values (OR within a key, AND across keys). No requirement matches every machine.
 */
export function metadataMatches(
  required: Readonly<Record<string, readonly string[]>>,
  machine: Readonly<Record<string, string>>,
): boolean {
  for (const key of Object.keys(required)) {
    const values = required[key] ?? [];
    if (values.length === 0) continue;
    if (!Object.prototype.hasOwnProperty.call(machine, key)) return false;
    const have = machine[key];
    if (have === undefined || !values.includes(have)) return false;
  }
  return true;
}

/** True when the unit names at least one metadata value. */
export function hasMetadata(required: Readonly<Record<string, readonly string[]>>): boolean {
  for (const key in required) if ((required[key]?.length ?? 0) > 0) return true;
  return false;
}

/** `region=eu` / `region=eu|us, disk=ssd`: a metadata requirement as shown in reasons. */
export function formatMetadata(required: Readonly<Record<string, readonly string[]>>): string {
  return Object.keys(required)
    .filter((k) => (required[k] ?? []).length > 0)
    .map((k) => `${k}=${(required[k] ?? []).join('|')}`)
    .join(', ');
}

/** A stable key for a requirement (sorted keys and values), for caching candidate lists. */
export function metadataSignature(required: Readonly<Record<string, readonly string[]>>): string {
  return Object.keys(required)
    .filter((k) => (required[k] ?? []).length > 0)
    .sort()
    .map((k) => `${k}=${[...(required[k] ?? [])].sort().join('\u0001')}`)
    .join('\u0000');
}

/**
 * Memoised `globMatch` (Go `path.Match`; a malformed pattern never matches). `globMatch` is pure,
 * so answers can be kept across planning passes; past `limit` remembered answers the memo starts
 * over, which bounds memory on clusters whose unit names churn.
 */
export class GlobCache {
  private readonly byPattern = new Map<string, Map<string, boolean>>();
  private size = 0;

  constructor(private readonly limit = 1_000_000) {}

  match(pattern: string, name: string): boolean {
    let names = this.byPattern.get(pattern);
    if (names === undefined) {
      names = new Map();
      this.byPattern.set(pattern, names);
    }
    let hit = names.get(name);
    if (hit === undefined) {
      hit = globMatch(pattern, name);
      if (this.size >= this.limit) {
        this.byPattern.clear();
        this.size = 0;
        names = new Map();
        this.byPattern.set(pattern, names);
      }
      names.set(name, hit);
      this.size++;
    }
    return hit;
  }
}

/**
 * One memo for every scheduling pass in this process: the engine plans every couple of seconds
 * over mostly the same unit names, so steady-state passes do no glob matching at all.
 */
export const sharedGlobCache = new GlobCache();

export type Matcher = (pattern: string, name: string) => boolean;

/** Why two units may not share a machine: whose `Conflicts=` pattern matched the other's name. */
export interface ConflictCause {
  /** The unit whose Conflicts= holds the pattern. */
  owner: string;
  pattern: string;
}

/**
 * fleet `hasConflict`, for one pair: conflicts are symmetric, so either unit's pattern matching the
 * other's name is enough. A unit never conflicts with itself. `a`'s own patterns are tried first.
 */
export function conflictBetween(a: UnitRules, b: UnitRules, match: Matcher): ConflictCause | undefined {
  if (a.name === b.name) return undefined;
  for (const p of a.conflicts) if (match(p, b.name)) return { owner: a.name, pattern: p };
  for (const p of b.conflicts) if (match(p, a.name)) return { owner: b.name, pattern: p };
  return undefined;
}

/**
 * fleet `hasReplace`, for one pair: the `Replaces=` pattern of `replacer` that matches `target`, or
 * undefined. When each unit's Replaces= matches the other (circular), neither replaces the other.
 */
export function replacePattern(replacer: UnitRules, target: UnitRules, match: Matcher): string | undefined {
  if (replacer.name === target.name) return undefined;
  const pattern = replacer.replaces.find((p) => match(p, target.name));
  if (pattern === undefined) return undefined;
  if (target.replaces.some((p) => match(p, replacer.name))) return undefined;
  return pattern;
}

/** A reason fragment naming a conflict: `Conflicts=web@*.service` or `x.service has Conflicts=y*`. */
export function describeConflict(subject: string, cause: ConflictCause): string {
  return cause.owner === subject
    ? `Conflicts=${cause.pattern}`
    : `${cause.owner} has Conflicts=${cause.pattern}`;
}

/**
 * The agent's rule for one machine (fleet `desiredAgentState`): visit the candidates in name order
 * and keep each one that conflicts with none kept before it, so of two conflicting units the one
 * with the lower name wins. `conflict(a, b)` must be symmetric in outcome.
 */
export function selectConflictFree<T extends { name: string }>(
  candidates: readonly T[],
  conflict: (a: T, b: T) => ConflictCause | undefined,
): { kept: T[]; dropped: { unit: T; winner: T; cause: ConflictCause }[] } {
  const sorted = [...candidates].sort((x, y) => compareNames(x.name, y.name));
  const kept: T[] = [];
  const dropped: { unit: T; winner: T; cause: ConflictCause }[] = [];
  for (const unit of sorted) {
    let lost = false;
    for (const winner of kept) {
      const cause = conflict(unit, winner);
      if (cause !== undefined) {
        dropped.push({ unit, winner, cause });
        lost = true;
        break;
      }
    }
    if (!lost) kept.push(unit);
  }
  return { kept, dropped };
}

/** Byte-wise (code unit) order, as Go sorts strings: independent of locale. */
export function compareNames(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
