/**
 * Trusted update keys: every `*.pub` file (PEM SPKI ed25519) in a directory, by default
 * /etc/flotilla/update-keys (UPDATE_KEYS_DIR in update.conf). A key file that is not an ed25519
 * public key is an E_CONFIG error naming the file: a typo must not silently drop a key.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { FlotillaError, isErrno } from '../lib/errors.js';
import { parsePublicKey, type TrustedKey } from './bundle.js';

export const DEFAULT_KEYS_DIR = '/etc/flotilla/update-keys';

export function loadTrustedKeys(dir = DEFAULT_KEYS_DIR): TrustedKey[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch (err) {
    if (isErrno(err, 'ENOENT')) return [];
    throw new FlotillaError('E_CONFIG', `${dir}: ${(err as Error).message}`, { dir });
  }
  return names
    .filter((n) => n.endsWith('.pub'))
    .sort()
    .map((n) => {
      const file = join(dir, n);
      return parsePublicKey(readFileSync(file, 'utf8'), file);
    });
}
