/**
 * What a read-only caller may see of a unit (README "API roles", docs/secrets.md).
 *
 * `Environment=` values — in `[Container]` (where secrets belong) and in `[Service]` — are
 * redacted for every caller without the `operator` role (`viewer`, `agent`): each NAME=VALUE word
 * becomes NAME=<redacted>, so a viewer still sees which variables a unit sets, never their values.
 * A value that does not split into words (an unterminated quote) becomes `<redacted>` whole.
 * The operator (and the root-only unix socket) gets the unit as submitted. Other keys are shown as
 * they are: a secret does not belong in ExecStart= (docs/secrets.md).
 */
import { splitWords } from '../container/spec.js';
import type { Role } from './roles.js';

export const REDACTED = '<redacted>';

/** Keys whose values are redacted for a read-only caller, in any section. */
const SECRET_KEYS = new Set(['Environment']);

/** May `roles` see secret values (Environment=) of a unit? Only the operator (undefined = an in-process call: operator, as in http.ts). */
export function maySeeSecrets(roles: ReadonlySet<Role> | undefined): boolean {
  return roles === undefined || roles.has('operator');
}

/** The value of an Environment= line with every value replaced: `A=1 "B=two words"` → `A=<redacted> B=<redacted>`. */
export function redactEnvironment(value: string): string {
  let words: string[];
  try {
    words = splitWords(value);
  } catch {
    return REDACTED;
  }
  return words
    .map((w) => {
      const eq = w.indexOf('=');
      const name = eq > 0 ? w.slice(0, eq) : '';
      // Only a plain variable name is kept; anything else could itself be part of a secret.
      return /^[A-Za-z_][A-Za-z0-9_]*$/.test(name) ? `${name}=${REDACTED}` : REDACTED;
    })
    .join(' ');
}

export interface OptionLike {
  section: string;
  name: string;
  value: string;
}

/** `options` as a caller with `roles` may see them (a new array; the input is not changed). */
export function optionsFor<T extends OptionLike>(options: T[], roles: ReadonlySet<Role> | undefined): T[] {
  if (maySeeSecrets(roles)) return options;
  return options.map((o) => (SECRET_KEYS.has(o.name) ? { ...o, value: redactEnvironment(o.value) } : o));
}
