/**
 * Kernel command line parameters, as coreos-cloudinit reads /proc/cmdline (host-tools.md §1.8):
 * whitespace-separated words, `key=value`, underscores in the key normalised to dashes (so
 * `cloud_config_url` is `cloud-config-url`), the last occurrence wins. The path is injectable for
 * tests.
 */
import { readFile } from 'node:fs/promises';
import type { Logger } from '../lib/log.js';

export const PROC_CMDLINE = '/proc/cmdline';

/** The value of `key` on the command line `text`, or undefined; a bare `key` or `key=` is ignored. */
export function cmdlineValue(text: string, key: string, log?: Logger): string | undefined {
  const want = key.replaceAll('_', '-');
  let found: string | undefined;
  for (const word of text.split(/\s+/)) {
    if (word === '') continue;
    const eq = word.indexOf('=');
    const k = (eq < 0 ? word : word.slice(0, eq)).replaceAll('_', '-');
    if (k !== want) continue;
    const v = eq < 0 ? '' : word.slice(eq + 1).replace(/^"(.*)"$/, '$1');
    if (v === '') {
      log?.warn({ key: want }, `kernel command line has ${want} without a value: ignored`);
      continue;
    }
    found = v;
  }
  return found;
}

/** Read the command line at `path` (default /proc/cmdline) and look up `key`. */
export async function readCmdlineValue(
  key: string,
  path = PROC_CMDLINE,
  log?: Logger,
): Promise<string | undefined> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch {
    return undefined;
  }
  return cmdlineValue(text, key, log);
}
