/**
 * write_files content decoding (host-tools.md §1.5 `encoding`), with coreos-cloudinit's messages:
 * `Unable to decode base64: …`, `Unable to decode gzip: …`, `Unsupported encoding "x"`. Base64 is
 * Go's StdEncoding (padding required, CR/LF ignored); gzip output is bounded at 16 MiB.
 */
import { gunzipSync } from 'node:zlib';
import { MAX_USERDATA_BYTES } from './userdata.js';

export class DecodeError extends Error {}

function base64(data: Buffer): Buffer {
  const t = data.toString('latin1').replace(/[\r\n]/g, '');
  if (t.length % 4 !== 0 || !/^[A-Za-z0-9+/]*(={0,2})$/.test(t)) {
    const bad = /[^A-Za-z0-9+/=]/.exec(t);
    const at = bad ? bad.index : t.length - (t.length % 4 || 4);
    throw new DecodeError(`Unable to decode base64: illegal base64 data at input byte ${at}`);
  }
  return Buffer.from(t, 'base64');
}

function gunzip(data: Buffer): Buffer {
  try {
    return gunzipSync(data, { maxOutputLength: MAX_USERDATA_BYTES });
  } catch (err) {
    const e = err as Error & { code?: string };
    const why =
      e.code === 'ERR_BUFFER_TOO_LARGE'
        ? 'larger than 16 MiB once decompressed'
        : e.code === 'Z_DATA_ERROR' || /header/i.test(e.message)
          ? 'gzip: invalid header'
          : e.message;
    throw new DecodeError(`Unable to decode gzip: ${why}`);
  }
}

/** Decode `content` by `encoding` ('' is raw). Throws DecodeError with coreos-cloudinit's message. */
export function decodeContent(content: Buffer, encoding: string): Buffer {
  switch (encoding) {
    case '':
      return content;
    case 'b64':
    case 'base64':
      return base64(content);
    case 'gz':
    case 'gzip':
      return gunzip(content);
    case 'gz+base64':
    case 'gzip+base64':
    case 'gz+b64':
    case 'gzip+b64':
      return gunzip(base64(content));
    default:
      throw new DecodeError(`Unsupported encoding ${JSON.stringify(encoding)}`);
  }
}
