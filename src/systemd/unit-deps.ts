/**
 * The things src/systemd needs from the unit model (src/unit), in one place: unit-name validation,
 * template lookup, and "does this unit file have an [Install] section".
 */
import {
  UnitFile,
  expandSpecifiers,
  isInstanceName,
  isTemplateName,
  parseUnitName,
  templateName,
  validateUnitName,
} from '../unit/index.js';

export { isTemplateName, validateUnitName };

/** For an instance `a@b.service` → `a@.service`; otherwise undefined. Never throws. */
export function templateOf(name: string): string | undefined {
  return isInstanceName(name) ? templateName(name) : undefined;
}

/**
 * Parses the body (throws E_UNIT_PARSE for a bad one) and tells whether it has an `[Install]` section
 * with at least one option, i.e. whether enabling it means anything.
 */
export function hasInstallSection(contents: string): boolean {
  return UnitFile.parse(contents).sections().includes('Install');
}

/** `[Unit] Description` with %i/%n/%p… expanded for `name` (what systemd shows), or undefined. */
export function unitDescription(name: string, contents: string): string | undefined {
  const d = UnitFile.parse(contents).description();
  return d === undefined ? undefined : expandSpecifiers(d, parseUnitName(name));
}
