/**
 * Payload (de)compression as streams: raw, gzip (node:zlib) and zstd (node:zlib where this Node has
 * it — 22.15+/23.8+ — else the `zstd` binary, run with an argv array, stdin to stdout).
 */
import { spawn } from 'node:child_process';
import { Duplex, PassThrough, type Transform } from 'node:stream';
import * as zlib from 'node:zlib';
import { FlotillaError } from '../lib/errors.js';
import type { Compression } from './bundle.js';

type ZlibWithZstd = typeof zlib & {
  createZstdDecompress?: () => Transform;
  createZstdCompress?: () => Transform;
};
const z = zlib as ZlibWithZstd;

/** Whether zstd runs in-process (else the `zstd` binary is used). */
export const nativeZstd = typeof z.createZstdDecompress === 'function';

/** `zstd` as a stream: argv only, stderr kept for the error message. */
function zstdProcess(args: readonly string[], binary = 'zstd'): Duplex {
  const child = spawn(binary, [...args], { stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (d: string) => {
    if (stderr.length < 4096) stderr += d;
  });
  const duplex = Duplex.from({ writable: child.stdin, readable: child.stdout });
  const fail = (msg: string) =>
    duplex.destroy(new FlotillaError('E_UPDATE_VERIFY', `zstd ${args.join(' ')}: ${msg}`, { binary }));
  child.on('error', (err) => fail(`cannot run ${binary}: ${err.message}`));
  child.on('close', (code, signal) => {
    if (code !== 0) fail(`exited ${code ?? signal}: ${stderr.trim() || 'no message'}`);
  });
  duplex.on('close', () => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });
  return duplex;
}

/** A stream that turns payload bytes into image bytes. */
export function decompressor(
  c: Compression,
  opts: { zstdBinary?: string; forceBinary?: boolean } = {},
): Duplex {
  switch (c) {
    case 'raw':
      return new PassThrough();
    case 'gzip':
      return zlib.createGunzip();
    case 'zstd':
      if (nativeZstd && !opts.forceBinary) return z.createZstdDecompress!();
      return zstdProcess(['-d', '-c', '-q'], opts.zstdBinary);
  }
}

/** A stream that turns image bytes into payload bytes (make-bundle). */
export function compressor(
  c: Compression,
  opts: { zstdBinary?: string; forceBinary?: boolean } = {},
): Duplex {
  switch (c) {
    case 'raw':
      return new PassThrough();
    case 'gzip':
      return zlib.createGzip({ level: 6 });
    case 'zstd':
      if (nativeZstd && !opts.forceBinary) return z.createZstdCompress!();
      return zstdProcess(['-c', '-q', '-3'], opts.zstdBinary);
  }
}
