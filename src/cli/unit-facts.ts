/**
 * What `list-unit-files` derives from a unit's options: fleet's hash (SHA-1 of the normal form) and
 * `[Unit] Description`. Loaded only by list-unit-files (it pulls in the unit-file serializer).
 */
import type { ApiUnit } from '../api/fleet-v1.js';
import { UnitFile } from '../unit/file.js';

export function unitFacts(u: ApiUnit): { hash: string; description: string | undefined } {
  const f = UnitFile.fromOptions(u.options ?? []);
  return { hash: f.hash(), description: f.description() };
}
