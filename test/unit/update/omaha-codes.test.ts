/**
 * The errorcode of an Omaha error event (src/update/omaha-codes.ts): each failure comes from the real
 * code that raises it (signature check, Omaha binding, payload verifier, target check, the Omaha
 * client against a loopback server), and gets update_engine's number for it, not 1 for everything.
 */
import { createHash } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FlotillaError } from '../../../src/lib/errors.js';
import {
  checkTarget,
  generateSigningKey,
  parsePrivateKey,
  parsePublicKey,
  PayloadVerifier,
  signManifest,
  verifyEnvelope,
  type Manifest,
} from '../../../src/update/bundle.js';
import { checkAgainstOmaha, COREOS_APPID, omahaPost, parseResponse } from '../../../src/update/omaha.js';
import { OMAHA_ERROR, omahaErrorCode } from '../../../src/update/omaha-codes.js';
import { rawManifest } from './manifest-fixture.js';

const thrown = async (fn: () => unknown): Promise<unknown> => {
  try {
    await fn();
  } catch (e) {
    return e;
  }
  throw new Error('did not throw');
};
const codeOf = async (fn: () => unknown) => omahaErrorCode(await thrown(fn));

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const payload = Buffer.from('an os image '.repeat(100));
const manifest: Manifest = rawManifest(payload, '4081.2.0');

describe('omahaErrorCode', () => {
  it('signature failures are kDownloadPayloadVerificationError (12)', async () => {
    const k1 = generateSigningKey();
    const k2 = generateSigningKey();
    const env = signManifest(manifest, parsePrivateKey(k1.privatePem, 'k1'));
    const tampered = { ...env, signed: { ...env.signed, version: '9999.0.0' } };
    const trusted = [parsePublicKey(k1.publicPem, 'k1.pub')];
    expect(await codeOf(() => verifyEnvelope(tampered, trusted))).toBe(12);
    expect(await codeOf(() => verifyEnvelope(env, [parsePublicKey(k2.publicPem, 'k2.pub')]))).toBe(12);
    expect(await codeOf(() => verifyEnvelope(env, []))).toBe(12);
  });

  it('payload hash and size are kPayloadHashMismatchError (10) and kPayloadSizeMismatchError (11)', async () => {
    const wrong = new PayloadVerifier(payload.length, sha(payload), 'payload');
    wrong.update(Buffer.alloc(payload.length, 1));
    expect(await codeOf(() => wrong.finish())).toBe(OMAHA_ERROR.PayloadHashMismatchError);
    const short = new PayloadVerifier(payload.length, sha(payload), 'payload');
    short.update(payload.subarray(1));
    expect(await codeOf(() => short.finish())).toBe(OMAHA_ERROR.PayloadSizeMismatchError);
    const long = new PayloadVerifier(payload.length, sha(payload), 'payload');
    expect(await codeOf(() => long.update(Buffer.concat([payload, payload])))).toBe(11);
  });

  it('Omaha and the signed manifest: sha256 10, size 11, version 12', async () => {
    const fix = (n: string) => readFileSync(join(import.meta.dirname, '../../fixtures/omaha', n), 'utf8');
    const a = parseResponse(fix('update.xml'), COREOS_APPID);
    if (a.kind !== 'update') throw new Error('fixture');
    const m = {
      version: '4081.2.0',
      payload: 'payload.img.gz',
      size: 314572800,
      sha256: createHash('sha256').update('flotilla omaha fixture payload').digest('hex'),
    } as Manifest;
    const bytes = Buffer.alloc(612, 0x20);
    expect(() => checkAgainstOmaha(a, m, bytes)).not.toThrow();
    expect(await codeOf(() => checkAgainstOmaha(a, { ...m, sha256: 'ab'.repeat(32) }, bytes))).toBe(10);
    expect(await codeOf(() => checkAgainstOmaha(a, { ...m, size: 1 }, bytes))).toBe(11);
    expect(await codeOf(() => checkAgainstOmaha(a, { ...m, version: '4081.3.0' }, bytes))).toBe(12);
  });

  it('another board is kOmahaResponseHandlerError (3); a broken answer kOmahaResponseInvalid (34)', async () => {
    expect(await codeOf(() => checkTarget(manifest, { board: 'arm64-usr', arch: 'amd64' }))).toBe(3);
    expect(
      await codeOf(() => checkTarget(manifest, { board: 'amd64-usr', arch: 'amd64', slotSize: 10 })),
    ).toBe(3);
    expect(await codeOf(() => parseResponse('<response protocol="2.0"/>', COREOS_APPID))).toBe(34);
  });

  describe('the update check over HTTP', () => {
    let server: Server;
    let status = 404;
    let url = '';
    beforeAll(async () => {
      server = createServer((_req, res) => {
        res.statusCode = status;
        res.end('no');
      });
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      url = `http://127.0.0.1:${(server.address() as { port: number }).port}/v1/update/`;
    });
    afterAll(() => new Promise((r) => server.close(r)));

    it('a 4xx answer is kOmahaRequestHTTPResponseBase + status; no answer is kDownloadTransferError (9)', async () => {
      status = 404;
      expect(await codeOf(() => omahaPost(url, '<request/>', { attempts: 1 }))).toBe(2404);
      status = 503;
      expect(await codeOf(() => omahaPost(url, '<request/>', { attempts: 2, backoffMs: 1 }))).toBe(9);
    });
  });

  it('anything else is kError (1)', () => {
    expect(omahaErrorCode(new Error('boom'))).toBe(1);
    expect(omahaErrorCode(new FlotillaError('E_CONFIG', 'x'))).toBe(1);
  });
});
