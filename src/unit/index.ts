/**
 * systemd unit files for flotilla: parsing and the fleet normal form/hash (`file.ts`), unit names
 * (`name.ts`), fleet's [X-Fleet] scheduling options and the `path.Match` glob (`fleet.ts`).
 */
export { UnitFile, UNIT_BODY_MAX, UNIT_LINE_MAX, type UnitOption } from './file.js';
export {
  TEMPLATE_SUFFIXES,
  UNIT_NAME_MAX,
  UNIT_SUFFIXES,
  isInstanceName,
  isTemplateName,
  mangleUnitName,
  parseUnitName,
  templateName,
  validateUnitName,
  type UnitNameInfo,
  type UnitSuffix,
} from './name.js';
export {
  FLEET_KEYS,
  FLEET_SECTION,
  expandSpecifiers,
  fleetRequirements,
  globMatch,
  isTruthy,
  isValidGlob,
  parseMultiValue,
  type FleetKey,
  type FleetRequirements,
} from './fleet.js';
