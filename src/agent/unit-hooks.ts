/**
 * UnitHooks: the port between the machine agent and kinds of unit that need more than systemd (today:
 * container units, implemented by ContainerUnits in src/container/units.ts, wired by the daemon). The
 * agent calls it at fixed points of a pass and knows nothing else about Docker; plain units need
 * nothing, so an agent without Docker gets `plainUnitHooks` and has no "is there a container side?"
 * checks of its own. The port is the agent's: implementations import these types, the agent never
 * imports an implementation.
 *
 *   prepare(desired, observed)        before planning: returns NEW planner inputs (the given ones are
 *                                     left as they are) with `beforeStart`/`retry` set and the
 *                                     observed states overlaid where the hooks know better
 *   prepareInstall(name, hash, body)  the contents to install for a unit (throws: the unit fails)
 *   pull(name, image)                 the executor's `pull` action (starts it; returns at once)
 *   decorate(record)                  a unit's published state, with what the hooks add (a new record)
 *   forget(name)                      the unit was uninstalled
 *   installedHash(file)               the hash the agent tracks for a file it finds installed
 *   dump()                            the hooks' state for SIGUSR1 (undefined: nothing to show)
 */
import type { UnitStateRecord } from '../registry/types.js';
import type { UnitFile } from '../unit/index.js';
import type { DesiredUnit, ObservedUnit } from './planner.js';

export type { DesiredUnit, ObservedUnit };

/** What the planner plans from (the part the hooks may add to). */
export interface PlanInputs {
  desired: DesiredUnit[];
  observed: Map<string, ObservedUnit>;
}

export interface UnitHooks {
  prepare(desired: readonly DesiredUnit[], observed: ReadonlyMap<string, ObservedUnit>): Promise<PlanInputs>;
  prepareInstall(name: string, hash: string, body: string): string;
  pull(name: string, image: string): void;
  decorate(rec: Readonly<UnitStateRecord>): UnitStateRecord;
  forget(name: string): void;
  installedHash(file: UnitFile): string;
  dump(): Record<string, unknown> | undefined;
}

/** Plain units only (no Docker): install as written, nothing to add; a `pull` fails the unit. */
export const plainUnitHooks: UnitHooks = {
  prepare: (desired, observed) => Promise.resolve({ desired: [...desired], observed: new Map(observed) }),
  prepareInstall: (_name, _hash, body) => body,
  pull: () => {
    throw new Error('container units are not supported by this agent (no Docker)');
  },
  decorate: (rec) => ({ ...rec }),
  forget: () => undefined,
  installedHash: (file) => file.hash(),
  dump: () => undefined,
};
