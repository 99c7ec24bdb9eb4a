/**
 * User-data formats (host-tools.md §1.2 step 3 and 8, §1.3): what a datasource handed us.
 *
 *   - gzip (magic 1f 8b): gunzipped first, bounded at 16 MiB;
 *   - empty: nothing to do;
 *   - `#!` on line 1: a script (run with bash in a transient unit, whatever the shebang says);
 *   - `#cloud-config` (trailing whitespace trimmed) on line 1: a cloud-config;
 *   - JSON with `ignitionVersion` or `ignition.version`: an Ignition config, left to the Ignition
 *     path (`flotilla ignition`): coreos-cloudinit prints `Detected an Ignition config. Exiting...`
 *     and exits 0, and so do we;
 *   - `Content-Type: multipart/mixed` on line 1: refused. CoreOS's coreos-cloudinit never read
 *     multi-part MIME (only Flatcar's fork does), so such user-data is `Unrecognized user-data
 *     format` there, and here, with a line saying why;
 *   - anything else: `Unrecognized user-data format`.
 */
import { gunzipSync } from 'node:zlib';
import { FlotillaError } from '../lib/errors.js';

/** The largest user-data accepted, before and after gunzip. */
export const MAX_USERDATA_BYTES = 16 * 1024 * 1024;

export const IGNITION_DETECTED = 'Detected an Ignition config. Exiting...';
export const UNRECOGNIZED = 'Unrecognized user-data format';
export const MULTIPART_REFUSED =
  'multi-part MIME user-data is not supported (as in coreos-cloudinit): give a single #cloud-config or #! script';

export type UserdataFormat = 'empty' | 'script' | 'cloud-config' | 'ignition' | 'multipart' | 'unrecognized';

/** Bytes → text, gunzipped when it starts with the gzip magic. Throws E_CLOUDCONFIG past 16 MiB. */
export function decodeUserdata(data: Buffer): string {
  if (data.length > MAX_USERDATA_BYTES) {
    throw new FlotillaError(
      'E_CLOUDCONFIG',
      `user-data is ${data.length} bytes, more than the ${MAX_USERDATA_BYTES}-byte (16 MiB) limit`,
      { bytes: data.length },
    );
  }
  if (data.length >= 2 && data[0] === 0x1f && data[1] === 0x8b) {
    try {
      data = gunzipSync(data, { maxOutputLength: MAX_USERDATA_BYTES });
    } catch (err) {
      const e = err as Error & { code?: string };
      const why = e.code === 'ERR_BUFFER_TOO_LARGE' ? 'larger than 16 MiB once decompressed' : e.message;
      throw new FlotillaError('E_CLOUDCONFIG', `user-data: Unable to decode gzip: ${why}`, {});
    }
  }
  return data.toString('utf8');
}

function firstLine(text: string): string {
  const nl = text.indexOf('\n');
  return (nl < 0 ? text : text.slice(0, nl)).replace(/\s+$/, '');
}

export function isCloudConfig(text: string): boolean {
  return firstLine(text) === '#cloud-config';
}

export function isScript(text: string): boolean {
  return text.startsWith('#!');
}

export function isMultipartMime(text: string): boolean {
  return firstLine(text).includes('Content-Type: multipart/mixed;');
}

/** Ignition JSON: an object with `ignitionVersion` (spec 1) or `ignition.version` (spec 2+). */
export function isIgnitionConfig(text: string): boolean {
  const t = text.trimStart();
  if (!t.startsWith('{')) return false;
  try {
    const j = JSON.parse(t) as Record<string, unknown> | null;
    if (j === null || typeof j !== 'object') return false;
    if ('ignitionVersion' in j) return true;
    const ign = j.ignition as Record<string, unknown> | undefined;
    return typeof ign === 'object' && ign !== null && 'version' in ign;
  } catch {
    return false;
  }
}

export function detectFormat(text: string): UserdataFormat {
  if (text.length === 0) return 'empty';
  if (isScript(text)) return 'script';
  if (isCloudConfig(text)) return 'cloud-config';
  if (isIgnitionConfig(text)) return 'ignition';
  if (isMultipartMime(text)) return 'multipart';
  return 'unrecognized';
}
