/**
 * `$private_ipv4`, `$public_ipv4`, `$private_ipv6`, `$public_ipv6` substitution (host-tools.md §1.4):
 * plain text replacement over the whole user-data before it is parsed (scripts included). Each
 * value comes from the datasource's metadata, else from COREOS_PRIVATE_IPV4 … in the process
 * environment, else it is empty, as in coreos-cloudinit (which then wrote `http://:2379`). Unlike
 * coreos-cloudinit an empty substitution is never silent: every use of an empty token comes back as
 * a warning naming the token and its line. `\$private_ipv4` is the literal text `$private_ipv4`.
 */
import type { Metadata } from '../datasource/types.js';

export const TOKENS = ['$public_ipv4', '$private_ipv4', '$public_ipv6', '$private_ipv6'] as const;
export type Token = (typeof TOKENS)[number];

const ENV_NAME: Record<Token, string> = {
  $public_ipv4: 'COREOS_PUBLIC_IPV4',
  $private_ipv4: 'COREOS_PRIVATE_IPV4',
  $public_ipv6: 'COREOS_PUBLIC_IPV6',
  $private_ipv6: 'COREOS_PRIVATE_IPV6',
};

export interface Substitutions {
  /** Token → value ('' when neither the metadata nor the environment has one). */
  values: Record<Token, string>;
  /** COREOS_* name → non-empty value, for the /etc/environment merge. */
  environment: Record<string, string>;
}

export function substitutionsFrom(md: Metadata, env: NodeJS.ProcessEnv = {}): Substitutions {
  const fromMd: Record<Token, string | undefined> = {
    $public_ipv4: md.publicIPv4,
    $private_ipv4: md.privateIPv4,
    $public_ipv6: md.publicIPv6,
    $private_ipv6: md.privateIPv6,
  };
  const values = {} as Record<Token, string>;
  const environment: Record<string, string> = {};
  for (const t of TOKENS) {
    const v = fromMd[t] || env[ENV_NAME[t]] || '';
    values[t] = v;
    if (v !== '') environment[ENV_NAME[t]] = v;
  }
  return { values, environment };
}

export interface SubstitutionWarning {
  token: Token;
  line: number;
  message: string;
}

/** Replace the tokens in `text`; warnings for each line where a token became empty. */
export function applySubstitutions(
  text: string,
  subs: Substitutions,
): { text: string; warnings: SubstitutionWarning[] } {
  const warnings: SubstitutionWarning[] = [];
  const re = /(\\?)\$(public|private)_ipv(4|6)/g;
  const lines = text.split('\n');
  const out = lines.map((line, i) =>
    line.replace(re, (m: string, esc: string, which: string, v: string) => {
      const token = `$${which}_ipv${v}` as Token;
      if (esc === '\\') return token;
      const val = subs.values[token];
      if (val === '') {
        warnings.push({
          token,
          line: i + 1,
          message: `line ${i + 1}: ${token} is empty: the datasource has no ${which} IPv${v} address and ${ENV_NAME[token]} is not set`,
        });
      }
      void m;
      return val;
    }),
  );
  return { text: out.join('\n'), warnings };
}
