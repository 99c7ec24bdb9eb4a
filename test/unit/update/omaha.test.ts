/**
 * The Omaha v3 transport against recorded request/response XML (test/fixtures/omaha/): the request
 * byte for byte, noupdate, update, malformed, oversized, wrong appid, DOCTYPE, a missing sha256, and
 * the binding of the answer to the signed manifest (hash mismatch → E_UPDATE_VERIFY).
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { FlotillaError } from '../../../src/lib/errors.js';
import { loadUpdateConfig } from '../../../src/update/config.js';
import type { Manifest } from '../../../src/update/bundle.js';
import {
  buildRequest,
  checkAgainstOmaha,
  COREOS_APPID,
  EVENT,
  MAX_RESPONSE_BYTES,
  parseResponse,
  RESULT,
  type OmahaParams,
} from '../../../src/update/omaha.js';
import { parseXml } from '../../../src/update/omaha-xml.js';

const FIX = join(import.meta.dirname, '../../fixtures/omaha');
const fixture = (n: string) => readFileSync(join(FIX, n), 'utf8');
const PAYLOAD_SHA = createHash('sha256').update('flotilla omaha fixture payload').digest('hex');

function code(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    if (err instanceof FlotillaError) return `${err.code}: ${err.message}`;
    throw err;
  }
  return 'no error';
}

const params: OmahaParams = {
  appid: COREOS_APPID,
  version: '4000.0.0',
  track: 'stable',
  board: 'amd64-usr',
  arch: 'amd64',
  machineId: 'a1b2c3d4e5f60718293a4b5c6d7e8f90',
  bootId: '{0a6f6bbc-2b4c-4f1e-9c53-0d6a3a1fa1e2}',
};

describe('the Omaha request', () => {
  it('is the recorded update check, byte for byte', () => {
    expect(buildRequest(params, { updateCheck: true, ping: true })).toBe(fixture('request-updatecheck.xml'));
  });
  it('carries events (3/2 with previousversion after a reboot, 3/0 with errorcode)', () => {
    const x = buildRequest(params, {
      updateCheck: false,
      events: [
        { type: EVENT.updateComplete, result: RESULT.successReboot, previousVersion: '3999.0.0' },
        { type: EVENT.updateComplete, result: RESULT.error, errorCode: 1 },
      ],
    });
    const app = parseXml(x).children.find((c) => c.name === 'app')!;
    expect(app.children.map((c) => c.attrs)).toEqual([
      { eventtype: '3', eventresult: '2', previousversion: '3999.0.0' },
      { eventtype: '3', eventresult: '0', errorcode: '1' },
    ]);
    expect(x).not.toContain('<updatecheck');
  });
  it('escapes every attribute (input never becomes markup)', () => {
    const x = buildRequest({ ...params, track: 'a"/><evil x="1', oem: "<&'>" }, { updateCheck: true });
    const app = parseXml(x).children.find((c) => c.name === 'app')!;
    expect(app.attrs['track']).toBe('a"/><evil x="1');
    expect(app.attrs['oem']).toBe("<&'>");
    expect(app.children.map((c) => c.name)).toEqual(['updatecheck']);
  });
});

describe('the Omaha response', () => {
  it('noupdate', () => {
    expect(parseResponse(fixture('noupdate.xml'), COREOS_APPID)).toEqual({ kind: 'noupdate' });
  });
  it('update: codebase, version, both packages, postinstall sha256 as hex', () => {
    expect(parseResponse(fixture('update.xml'), COREOS_APPID)).toEqual({
      kind: 'update',
      version: '4081.2.0',
      codebases: ['https://update.example.test/flatcar/4081.2.0/'],
      manifest: { name: 'manifest.json', size: 612 },
      payload: { name: 'payload.img.gz', size: 314572800 },
      sha256: PAYLOAD_SHA,
    });
  });
  it('the appid compares case-insensitively', () => {
    expect(parseResponse(fixture('noupdate.xml'), COREOS_APPID.toUpperCase()).kind).toBe('noupdate');
  });
  it.each([
    [
      'malformed.xml',
      /E_UPDATE_OMAHA: Omaha response: malformed XML: line 5: end tag <\/urls> does not match <url> \(line 5\)/,
    ],
    [
      'wrong-appid.xml',
      /E_UPDATE_OMAHA: .*expected one <app appid="\{e96281a6.*found appid \{11111111-.*wrong appid/,
    ],
    ['doctype.xml', /E_UPDATE_OMAHA: .*line 2: DOCTYPE and other declarations are not accepted/],
    ['no-sha256.xml', /E_UPDATE_OMAHA: .*line 11: <action event="postinstall"> has no sha256= attribute/],
  ])('%s is a clear error', (f, re) => {
    expect(code(() => parseResponse(fixture(f), COREOS_APPID))).toMatch(re);
  });
  it('an oversized answer is refused before parsing', () => {
    const big = fixture('noupdate.xml').replace('<app', `<!-- ${'x'.repeat(MAX_RESPONSE_BYTES)} --><app`);
    expect(code(() => parseResponse(big, COREOS_APPID))).toMatch(
      /E_UPDATE_OMAHA: .*over 65536 bytes \(oversized\)/,
    );
  });
  it.each([
    [
      ['<updatecheck status="ok">', '<updatecheck status="error-internal">'],
      /<updatecheck status="error-internal">/,
    ],
    [['<app appid', '<app status="error-unknownApplication" appid'], /attribute status appears twice/],
    [['protocol="3.0"', 'protocol="2.0"'], /<response protocol="2.0"> is not 3.0/],
    [['codebase="https:', 'codebase="file:'], /codebase="file:.*is not http or https/],
    [['name="payload.img.gz"', 'name="../payload"'], /is not a plain file name/],
    [['size="314572800"', 'size="-1"'], /size="-1" is not a positive integer/],
    [
      ['<package name="manifest.json" size="612" required="true"></package>', ''],
      /must list the signed bundle manifest/,
    ],
    [['DisablePayloadBackoff', 'sha256="AAAA" x'], /attribute sha256 appears twice|not a base64 SHA-256/],
    [['&amp;notes', '&notes'], /unknown entity|bare "&"/],
  ])('a broken update answer (%j) names the fault', ([from, to], re) => {
    const x = fixture('update.xml').replace(from!, to!);
    expect(x).not.toBe(fixture('update.xml'));
    expect(code(() => parseResponse(x, COREOS_APPID))).toMatch(re);
  });
});

describe('binding the answer to the signed manifest', () => {
  const a = parseResponse(fixture('update.xml'), COREOS_APPID);
  if (a.kind !== 'update') throw new Error('fixture');
  const bytes = Buffer.alloc(612, 0x20);
  const m = {
    version: '4081.2.0',
    payload: 'payload.img.gz',
    size: 314572800,
    sha256: PAYLOAD_SHA,
  } as Manifest;
  it('agrees', () => expect(code(() => checkAgainstOmaha(a, m, bytes))).toBe('no error'));
  it.each([
    [
      { sha256: 'ab'.repeat(32) },
      /E_UPDATE_VERIFY: Omaha and the signed manifest disagree on the payload sha256/,
    ],
    [{ size: 1 }, /disagree on the payload size/],
    [{ payload: 'other.img' }, /disagree on the payload name/],
    [{ version: '4081.3.0' }, /disagree on the version/],
  ])('hash mismatch and friends: %j', (change, re) => {
    expect(code(() => checkAgainstOmaha(a, { ...m, ...change }, bytes))).toMatch(re);
  });
  it('the manifest package size and hash_sha256 bind the manifest bytes', () => {
    expect(code(() => checkAgainstOmaha(a, m, Buffer.alloc(611)))).toMatch(/manifest package size/);
    const withHash = { ...a, manifest: { ...a.manifest, hashSha256: 'cd'.repeat(32) } };
    expect(code(() => checkAgainstOmaha(withHash, m, bytes))).toMatch(/manifest package hash_sha256/);
  });
});

describe('transport selection (update.conf SERVER / UPDATE_TRANSPORT)', () => {
  const cfg = (env: Record<string, string>) =>
    loadUpdateConfig(env, '/nonexistent/update.conf', '/nonexistent');
  it('a /v1/update/ SERVER is Omaha', () => {
    const c = cfg({ SERVER: 'https://public.update.flatcar-linux.net/v1/update/' });
    expect(c.omaha).toEqual({ url: 'https://public.update.flatcar-linux.net/v1/update/' });
    expect(c.manifestUrl).toBeUndefined();
  });
  it('UPDATE_TRANSPORT=omaha for any path, with the app id', () => {
    const c = cfg({
      SERVER: 'http://127.0.0.1:1/omaha',
      UPDATE_TRANSPORT: 'omaha',
      COREOS_RELEASE_APPID: '{abc-1}',
    });
    expect(c.omaha).toEqual({ url: 'http://127.0.0.1:1/omaha', appid: '{abc-1}' });
  });
  it('other SERVERs stay the bundle transport; bad values name the key', () => {
    expect(cfg({ SERVER: 'http://127.0.0.1:1/srv/' }).manifestUrl).toBe(
      'http://127.0.0.1:1/srv/stable/amd64-usr/manifest.json',
    );
    expect(code(() => cfg({ SERVER: 'http://x/', UPDATE_TRANSPORT: 'ftp' }))).toMatch(
      /E_CONFIG: environment: UPDATE_TRANSPORT: "ftp" is not bundle or omaha/,
    );
  });
});
