/**
 * Checking one unit as fleet's `PUT /fleet/v1/units/{name}` takes it (`{name, desiredState, options}`),
 * before anything is read or written: shared by the fleet v1 API and the batch API (units-batch.ts).
 * Throws HttpError 400 (or the catalogue's E_UNIT_NAME / E_UNIT_OPTIONS / E_CONTAINER_SPEC, also 400).
 */
import { FlotillaError } from '../lib/errors.js';
import { isDesiredState, type DesiredState } from '../registry/types.js';
import { sha1 } from '../registry/registry.js';
import {
  UnitFile,
  fleetRequirements,
  isTemplateName,
  validateUnitName,
  type UnitOption,
} from '../unit/index.js';
import { isContainerUnit, parseContainerSection } from '../container/spec.js';
import { HttpError } from './http.js';

export interface CheckedUnitPut {
  name: string;
  desired: DesiredState | undefined;
  /** The normalised unit file when options were given. */
  text: string | undefined;
  /** sha1 of `text`. */
  hash: string | undefined;
  /** fleetRequirements' warnings (e.g. MachineOf=%n: never schedulable). */
  warnings: string[];
}

export function checkUnitPut(name: string, raw: unknown): CheckedUnitPut {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new HttpError(400, 'unable to decode body: expected a JSON object');
  }
  const body = raw as { name?: unknown; desiredState?: unknown; options?: unknown };
  if (body.name !== undefined && body.name !== '' && body.name !== name) {
    throw new HttpError(
      400,
      `name in URL ${JSON.stringify(name)} differs from unit name in request body ${JSON.stringify(body.name)}`,
    );
  }
  validateUnitName(name);
  if (body.desiredState !== undefined && !isDesiredState(body.desiredState)) {
    throw new HttpError(
      400,
      `invalid desiredState ${JSON.stringify(body.desiredState)}: must be inactive, loaded or launched`,
    );
  }
  const desired = body.desiredState;
  if (body.options !== undefined && !Array.isArray(body.options))
    throw new HttpError(400, 'unable to decode body: options must be an array');
  const options = (body.options ?? []) as UnitOption[];
  if (desired !== undefined && desired !== 'inactive' && isTemplateName(name)) {
    throw new HttpError(400, `cannot activate template ${JSON.stringify(name)}`);
  }
  if (options.length === 0) return { name, desired, text: undefined, hash: undefined, warnings: [] };
  const unit = UnitFile.fromOptions(options);
  // Throws E_UNIT_OPTIONS (400) on fleet's forbidden combinations.
  const { warnings } = fleetRequirements(name, unit);
  if (isContainerUnit(unit)) {
    parseContainerSection(name, unit); // E_CONTAINER_SPEC (400)
    // The unit's process is the Docker client: as another user it cannot reach the socket and
    // would fail only at start. The container's user is [Container] User=.
    if ((unit.getAll('Service', 'User').at(-1) ?? '') !== '') {
      throw new FlotillaError(
        'E_CONTAINER_SPEC',
        `${name}: [Service] User= cannot be used with [Container] (the unit's process drives Docker as root); set the container's user with [Container] User=`,
        { unit: name, field: 'User' },
      );
    }
  }
  const text = unit.serialize();
  return { name, desired, text, hash: sha1(text), warnings };
}
