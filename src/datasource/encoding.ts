/**
 * Decoding of guestinfo config data by its `.encoding` key (host-tools.md §1.9, §2.3): "" (raw),
 * `b64`/`base64`, `gz`/`gzip`, and the two combined (`gz+base64`, `gzip+b64`, …: base64 first,
 * then gunzip). Anything else is `unsupported encoding`. Bounded: the decoded data may not pass
 * 16 MiB (a gzip bomb stops there).
 */
import { gunzipSync } from 'node:zlib';
import { FlotillaError } from '../lib/errors.js';
import { MAX_BODY_BYTES } from './http.js';

const B64 = new Set(['b64', 'base64']);
const GZ = new Set(['gz', 'gzip']);

function base64(data: Buffer, field: string): Buffer {
  const text = data.toString('latin1').replace(/\s+/g, '');
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(text) || text.length % 4 === 1) {
    throw new FlotillaError('E_DATASOURCE', `${field}: invalid base64 data`, { field });
  }
  return Buffer.from(text, 'base64');
}

function gunzip(data: Buffer, field: string, maxBytes: number): Buffer {
  try {
    return gunzipSync(data, { maxOutputLength: maxBytes });
  } catch (err) {
    const e = err as Error & { code?: string };
    const why =
      e.code === 'ERR_BUFFER_TOO_LARGE' ? `larger than ${maxBytes} bytes once decompressed` : e.message;
    throw new FlotillaError('E_DATASOURCE', `${field}: invalid gzip data: ${why}`, { field });
  }
}

/** The encodings decodeConfigData accepts, for messages and docs. */
export const ENCODINGS = [
  '',
  'b64',
  'base64',
  'gz',
  'gzip',
  'gz+b64',
  'gz+base64',
  'gzip+b64',
  'gzip+base64',
];

/** Decode `data` by `encoding`; `field` names the key in errors (never the data). */
export function decodeConfigData(
  data: Buffer,
  encoding: string | undefined,
  field: string,
  maxBytes = MAX_BODY_BYTES,
): Buffer {
  const enc = (encoding ?? '').trim().toLowerCase();
  if (enc === '') return data;
  if (B64.has(enc)) return base64(data, field);
  if (GZ.has(enc)) return gunzip(data, field, maxBytes);
  const [a, b, ...rest] = enc.split('+');
  if (rest.length === 0 && a !== undefined && b !== undefined && GZ.has(a) && B64.has(b)) {
    return gunzip(base64(data, field), field, maxBytes);
  }
  throw new FlotillaError(
    'E_DATASOURCE',
    `${field}.encoding: unsupported encoding ${JSON.stringify(encoding)} (one of ${ENCODINGS.filter((e) => e).join(', ')})`,
    { field: `${field}.encoding` },
  );
}
