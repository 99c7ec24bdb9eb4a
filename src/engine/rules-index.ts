/**
 * Which unit names each `Conflicts=`/`Replaces=` pattern matches, computed once per scheduling pass
 * so the scheduler never glob-matches inside its per-machine loop.
 *
 * Cost: one `globMatch` per (distinct non-literal pattern, unit name) pair whose name starts with
 * the pattern's literal prefix; a literal pattern (no `*?[\`) is a set lookup. Patterns are shared
 * by template instances (`Conflicts=web@*.service` on 1,000 instances is one pattern), so this is
 * normally a few thousand matches, however many units carry the pattern.
 */
import { sharedGlobCache } from './constraints.js';
import type { SchedulerJob } from './types.js';

const META = /[*?[\\]/;

function literalPrefix(pattern: string): string {
  const at = pattern.search(META);
  return at === -1 ? pattern : pattern.slice(0, at);
}

/** pattern → the names (among `names`) it matches. */
function matchAll(patterns: Iterable<string>, names: readonly string[], known: ReadonlySet<string>) {
  const out = new Map<string, Set<string>>();
  for (const pattern of patterns) {
    const hits = new Set<string>();
    if (!META.test(pattern)) {
      if (known.has(pattern)) hits.add(pattern);
    } else {
      const prefix = literalPrefix(pattern);
      for (const name of names) {
        if (name.startsWith(prefix) && sharedGlobCache.match(pattern, name)) hits.add(name);
      }
    }
    out.set(pattern, hits);
  }
  return out;
}

/** name → the patterns that match it (the inverse of `matchAll`). */
function invert(matched: ReadonlyMap<string, ReadonlySet<string>>): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const [pattern, names] of matched) {
    for (const name of names) {
      const list = out.get(name);
      if (list === undefined) out.set(name, [pattern]);
      else list.push(pattern);
    }
  }
  return out;
}

const NONE: readonly string[] = Object.freeze([]);

export class RulesIndex {
  private readonly conflictMatched: Map<string, Set<string>>;
  private readonly conflictTargets: Map<string, string[]>;
  private readonly replaceMatched: Map<string, Set<string>>;
  private readonly replaceTargets: Map<string, string[]>;
  private readonly known: ReadonlySet<string>;

  /** `jobs`: the units that can be on a machine in this pass (desired state other than inactive). */
  constructor(jobs: Iterable<SchedulerJob>) {
    const names: string[] = [];
    const conflictPatterns = new Set<string>();
    const replacePatterns = new Set<string>();
    for (const j of jobs) {
      names.push(j.name);
      for (const p of j.requirements.conflicts) conflictPatterns.add(p);
      for (const p of j.requirements.replaces) replacePatterns.add(p);
    }
    const known = new Set(names);
    this.known = known;
    this.conflictMatched = matchAll(conflictPatterns, names, known);
    this.conflictTargets = invert(this.conflictMatched);
    this.replaceMatched = matchAll(replacePatterns, names, known);
    this.replaceTargets = invert(this.replaceMatched);
  }

  /** The Conflicts= patterns (of any unit) that match `name`. */
  conflictPatternsMatching(name: string): readonly string[] {
    return this.conflictTargets.get(name) ?? NONE;
  }

  /** True when some unit's Replaces= pattern matches `name`. */
  isReplaceTarget(name: string): boolean {
    return this.replaceTargets.has(name);
  }

  /** Go `path.Match(pattern, name)`, answered from the index when it can be. */
  readonly match = (pattern: string, name: string): boolean => {
    if (this.known.has(name)) {
      const hits = this.conflictMatched.get(pattern) ?? this.replaceMatched.get(pattern);
      if (hits !== undefined) return hits.has(name);
    }
    return sharedGlobCache.match(pattern, name);
  };
}
