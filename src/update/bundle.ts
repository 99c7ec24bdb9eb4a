/**
 * Signed update bundles (docs/update-bundle.md): a small JSON manifest envelope and a payload file
 * next to it. The manifest names the payload, its size and SHA-256, its compression and the
 * uncompressed image's size and SHA-256; it is signed with ed25519 over its canonical bytes
 * (domain tag + sorted-key JSON), the signature embedded in the envelope:
 *
 *   { "signed": { …manifest… }, "signatures": [ { "keyid": "<16 hex>", "sig": "<base64>" } ] }
 *
 * Everything here is pure or node:crypto only. Order of checks: the envelope and each field
 * (E_UPDATE_MANIFEST naming the field), then the signature against the trusted keys
 * (E_UPDATE_VERIFY), then the target (board, arch, image size against the slot; E_UPDATE_MANIFEST
 * or E_UPDATE_SPACE). The payload bytes are checked separately (`PayloadVerifier`).
 */
import {
  createHash,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  sign as edSign,
  verify as edVerify,
  type KeyObject,
} from 'node:crypto';
import { FlotillaError } from '../lib/errors.js';

export const BUNDLE_FORMAT = 'flotilla-update-bundle/1';
/** Domain separation: a signature over a manifest is never valid for anything else. */
const SIGN_TAG = 'flotilla-update-manifest/1\n';
/** A manifest envelope is small; anything bigger is refused before JSON.parse. */
export const MAX_MANIFEST_BYTES = 64 * 1024;

export const COMPRESSIONS = ['raw', 'gzip', 'zstd'] as const;
export type Compression = (typeof COMPRESSIONS)[number];

export interface Manifest {
  format: typeof BUNDLE_FORMAT;
  /** The OS version the image carries, e.g. 4081.2.0. */
  version: string;
  board: string;
  arch: string;
  /** The payload file's name, relative to the manifest (no directories). */
  payload: string;
  /** Payload bytes as stored (compressed). */
  size: number;
  /** SHA-256 of the payload bytes as stored, lower-case hex. */
  sha256: string;
  compression: Compression;
  /** Bytes of the uncompressed image (what lands in the slot). */
  imageSize: number;
  /** SHA-256 of the uncompressed image: the slot is hashed again after the write. */
  imageSha256: string;
  /** ISO 8601 UTC. */
  created: string;
}

export interface Signature {
  keyid: string;
  sig: string;
}

export interface Envelope {
  signed: Manifest;
  signatures: Signature[];
}

export interface TrustedKey {
  keyid: string;
  key: KeyObject;
  /** Where it came from (file path), for messages. */
  source: string;
}

const HEX64 = /^[0-9a-f]{64}$/;
const VERSION = /^[0-9A-Za-z][0-9A-Za-z.+_-]{0,63}$/;
const NAME = /^[0-9A-Za-z][0-9A-Za-z._-]{0,63}$/;
const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/;

function manifestError(field: string, msg: string): FlotillaError {
  return new FlotillaError('E_UPDATE_MANIFEST', `update manifest: ${field}: ${msg}`, { field });
}

/** Sorted-key, whitespace-free JSON: the bytes that are signed. Strings and safe integers only. */
export function canonicalJson(v: unknown): string {
  if (typeof v === 'string') return JSON.stringify(v);
  if (typeof v === 'number') {
    if (!Number.isSafeInteger(v)) throw manifestError('(value)', `${v} is not a safe integer`);
    return String(v);
  }
  if (v !== null && typeof v === 'object' && !Array.isArray(v)) {
    const o = v as Record<string, unknown>;
    return `{${Object.keys(o)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonicalJson(o[k])}`)
      .join(',')}}`;
  }
  throw manifestError('(value)', `${JSON.stringify(v)} is not a string, integer or object`);
}

export function signedBytes(m: Manifest): Buffer {
  return Buffer.from(SIGN_TAG + canonicalJson(m), 'utf8');
}

/** keyid: the first 16 hex digits of SHA-256 over the raw 32-byte ed25519 public key. */
export function keyIdOf(key: KeyObject): string {
  const jwk = key.export({ format: 'jwk' });
  if (jwk.kty !== 'OKP' || jwk.crv !== 'Ed25519' || typeof jwk.x !== 'string')
    throw new FlotillaError('E_UPDATE_VERIFY', 'update key: not an ed25519 key');
  return createHash('sha256').update(Buffer.from(jwk.x, 'base64url')).digest('hex').slice(0, 16);
}

/** A trusted public key from PEM (SPKI) text. */
export function parsePublicKey(pem: string, source: string): TrustedKey {
  let key: KeyObject;
  try {
    key = createPublicKey(pem);
  } catch (err) {
    throw new FlotillaError('E_CONFIG', `${source}: not a PEM public key`, { file: source }, { cause: err });
  }
  if (key.asymmetricKeyType !== 'ed25519')
    throw new FlotillaError(
      'E_CONFIG',
      `${source}: an update key must be ed25519, not ${key.asymmetricKeyType}`,
      {
        file: source,
      },
    );
  return { keyid: keyIdOf(key), key, source };
}

export function parsePrivateKey(pem: string, source: string): KeyObject {
  let key: KeyObject;
  try {
    key = createPrivateKey(pem);
  } catch (err) {
    throw new FlotillaError('E_CONFIG', `${source}: not a PEM private key`, { file: source }, { cause: err });
  }
  if (key.asymmetricKeyType !== 'ed25519')
    throw new FlotillaError('E_CONFIG', `${source}: a signing key must be ed25519`, { file: source });
  return key;
}

/** A new signing key pair as PEM (private PKCS#8, public SPKI) and its keyid. */
export function generateSigningKey(): { privatePem: string; publicPem: string; keyid: string } {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  return {
    privatePem: privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(),
    publicPem: publicKey.export({ format: 'pem', type: 'spki' }).toString(),
    keyid: keyIdOf(publicKey),
  };
}

/** Validate a manifest object field by field (unknown fields are refused: nothing unsigned slips in). */
export function validateManifest(v: unknown): Manifest {
  if (v === null || typeof v !== 'object' || Array.isArray(v))
    throw manifestError('signed', 'must be an object');
  const o = v as Record<string, unknown>;
  const known = new Set([
    'format',
    'version',
    'board',
    'arch',
    'payload',
    'size',
    'sha256',
    'compression',
    'imageSize',
    'imageSha256',
    'created',
  ]);
  for (const k of Object.keys(o)) if (!known.has(k)) throw manifestError(k, 'unknown field');
  const str = (k: string, re: RegExp, what: string): string => {
    const x = o[k];
    if (typeof x !== 'string') throw manifestError(k, 'missing or not a string');
    if (!re.test(x)) throw manifestError(k, `${JSON.stringify(x)} is not ${what}`);
    return x;
  };
  const int = (k: string): number => {
    const x = o[k];
    if (typeof x !== 'number' || !Number.isSafeInteger(x) || x <= 0)
      throw manifestError(k, `must be a positive integer (bytes), got ${JSON.stringify(x)}`);
    return x;
  };
  if (o.format !== BUNDLE_FORMAT) throw manifestError('format', `must be "${BUNDLE_FORMAT}"`);
  const compression = o.compression;
  if (typeof compression !== 'string' || !(COMPRESSIONS as readonly string[]).includes(compression))
    throw manifestError('compression', `must be one of ${COMPRESSIONS.join(', ')}`);
  const m: Manifest = {
    format: BUNDLE_FORMAT,
    version: str('version', VERSION, 'a version'),
    board: str('board', NAME, 'a board name'),
    arch: str('arch', NAME, 'an architecture'),
    payload: str('payload', NAME, 'a plain file name'),
    size: int('size'),
    sha256: str('sha256', HEX64, 'lower-case hex SHA-256'),
    compression: compression as Compression,
    imageSize: int('imageSize'),
    imageSha256: str('imageSha256', HEX64, 'lower-case hex SHA-256'),
    created: str('created', ISO, 'an ISO 8601 UTC time'),
  };
  if (m.compression === 'raw' && (m.size !== m.imageSize || m.sha256 !== m.imageSha256))
    throw manifestError(
      'imageSize',
      'a raw payload is its own image: size and sha256 must equal imageSize and imageSha256',
    );
  return m;
}

/** Parse an envelope (bytes as downloaded); E_UPDATE_MANIFEST naming what is wrong. */
export function parseEnvelope(bytes: Buffer | string): Envelope {
  const buf = typeof bytes === 'string' ? Buffer.from(bytes) : bytes;
  if (buf.length > MAX_MANIFEST_BYTES)
    throw manifestError('(file)', `${buf.length} bytes, over the ${MAX_MANIFEST_BYTES}-byte limit`);
  let raw: unknown;
  try {
    raw = JSON.parse(buf.toString('utf8'));
  } catch (err) {
    throw manifestError('(file)', `not JSON (${(err as Error).message})`);
  }
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw))
    throw manifestError('(file)', 'not an object');
  const o = raw as Record<string, unknown>;
  for (const k of Object.keys(o))
    if (k !== 'signed' && k !== 'signatures') throw manifestError(k, 'unknown field');
  const signed = validateManifest(o.signed);
  if (!Array.isArray(o.signatures) || o.signatures.length === 0)
    throw new FlotillaError('E_UPDATE_MANIFEST', 'update manifest: signatures: the manifest is not signed', {
      field: 'signatures',
    });
  const signatures = o.signatures.map((s, i): Signature => {
    const f = `signatures[${i}]`;
    if (s === null || typeof s !== 'object') throw manifestError(f, 'must be an object');
    const { keyid, sig } = s as Record<string, unknown>;
    if (typeof keyid !== 'string' || !/^[0-9a-f]{16}$/.test(keyid))
      throw manifestError(`${f}.keyid`, 'must be 16 hex digits');
    if (typeof sig !== 'string' || !/^[A-Za-z0-9+/]{86}==$/.test(sig))
      throw manifestError(`${f}.sig`, 'must be a base64 ed25519 signature (64 bytes)');
    return { keyid, sig };
  });
  return { signed, signatures };
}

/** Sign a manifest: the envelope to publish. */
export function signManifest(m: Manifest, privateKey: KeyObject): Envelope {
  const manifest = validateManifest(m);
  const pub = createPublicKey(privateKey);
  const sig = edSign(null, signedBytes(manifest), privateKey).toString('base64');
  return { signed: manifest, signatures: [{ keyid: keyIdOf(pub), sig }] };
}

export function formatEnvelope(e: Envelope): string {
  return JSON.stringify(e, null, 2) + '\n';
}

/**
 * The manifest when one of its signatures verifies with a trusted key; E_UPDATE_VERIFY otherwise
 * (no trusted keys, signed by an unknown key, or a signature that does not verify).
 */
export function verifyEnvelope(
  e: Envelope,
  keys: readonly TrustedKey[],
): { manifest: Manifest; key: TrustedKey } {
  if (keys.length === 0)
    throw new FlotillaError(
      'E_UPDATE_VERIFY',
      'no trusted update keys: cannot verify the manifest signature',
    );
  const bytes = signedBytes(e.signed);
  const tried: string[] = [];
  for (const s of e.signatures) {
    const key = keys.find((k) => k.keyid === s.keyid);
    if (!key) {
      tried.push(s.keyid);
      continue;
    }
    if (edVerify(null, bytes, key.key, Buffer.from(s.sig, 'base64'))) return { manifest: e.signed, key };
    throw new FlotillaError(
      'E_UPDATE_VERIFY',
      `update manifest: the signature by key ${s.keyid} (${key.source}) does not verify: the manifest was altered`,
      { keyid: s.keyid },
    );
  }
  throw new FlotillaError(
    'E_UPDATE_VERIFY',
    `update manifest is signed by key ${tried.join(', ')}, which is not a trusted key (trusted: ${keys.map((k) => k.keyid).join(', ')})`,
    { keyids: tried },
  );
}

export interface Target {
  board: string;
  arch: string;
  /** Bytes of the passive slot. */
  slotSize?: number;
}

/** The manifest fits this machine: same board and arch, the image fits the slot. */
export function checkTarget(m: Manifest, t: Target): void {
  if (m.board !== t.board)
    throw new FlotillaError(
      'E_UPDATE_MANIFEST',
      `update manifest: board: ${m.board} is not this machine's board ${t.board}`,
      {
        field: 'board',
      },
    );
  if (m.arch !== t.arch)
    throw new FlotillaError(
      'E_UPDATE_MANIFEST',
      `update manifest: arch: ${m.arch} is not this machine's arch ${t.arch}`,
      {
        field: 'arch',
      },
    );
  if (t.slotSize !== undefined && m.imageSize > t.slotSize)
    throw new FlotillaError(
      'E_UPDATE_SPACE',
      `update image is ${m.imageSize} bytes, larger than the passive slot (${t.slotSize} bytes)`,
      { imageSize: m.imageSize, slotSize: t.slotSize },
    );
}

/** Node's arch names as the manifest spells them (GOARCH style, as CoreOS boards did). */
export function hostArch(arch: string = process.arch): string {
  return (
    ({ x64: 'amd64', arm64: 'arm64', arm: 'arm', ia32: '386', riscv64: 'riscv64' } as Record<string, string>)[
      arch
    ] ?? arch
  );
}

/**
 * Checks payload bytes as they stream: never more than the manifest's size, and at the end exactly
 * that size and SHA-256. E_UPDATE_VERIFY names which check failed.
 */
export class PayloadVerifier {
  private readonly hash = createHash('sha256');
  private seen = 0;

  constructor(
    private readonly expectSize: number,
    private readonly expectSha256: string,
    private readonly what = 'update payload',
  ) {}

  get bytes(): number {
    return this.seen;
  }

  update(chunk: Uint8Array): void {
    this.seen += chunk.length;
    if (this.seen > this.expectSize)
      throw new FlotillaError(
        'E_UPDATE_VERIFY',
        `${this.what} is larger than the ${this.expectSize} bytes the manifest states (oversized payload)`,
        { expected: this.expectSize },
      );
    this.hash.update(chunk);
  }

  finish(): void {
    if (this.seen < this.expectSize)
      throw new FlotillaError(
        'E_UPDATE_VERIFY',
        `${this.what} is truncated: ${this.seen} of ${this.expectSize} bytes`,
        { expected: this.expectSize, got: this.seen },
      );
    const got = this.hash.digest('hex');
    if (got !== this.expectSha256)
      throw new FlotillaError(
        'E_UPDATE_VERIFY',
        `${this.what} SHA-256 mismatch: manifest says ${this.expectSha256}, the bytes hash to ${got} (tampered or corrupt)`,
        { expected: this.expectSha256, got },
      );
  }
}
