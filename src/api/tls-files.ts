/**
 * The mutual-TLS listener's files (api_cafile, api_certfile, api_keyfile): read and checked before
 * they are used, so a rotation gone wrong (a key that is not the certificate's, a CA file that is
 * not PEM, an expired certificate) is refused with an error naming the file, and the listener keeps
 * what it had. Errors name files and fields, never their contents.
 */
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';

export interface TlsFiles {
  ca: string;
  cert: string;
  key: string;
}

export interface TlsPem {
  ca: Buffer;
  cert: Buffer;
  key: Buffer;
}

const PEM_CERT = /-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g;

/** The three files, read now; an error names the field and the file. */
export function readTlsFiles(t: TlsFiles): TlsPem {
  const read = (field: string, path: string) => {
    try {
      return readFileSync(path);
    } catch (err) {
      throw new Error(
        `${field}: cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
      );
    }
  };
  return {
    ca: read('api_cafile', t.ca),
    cert: read('api_certfile', t.cert),
    key: read('api_keyfile', t.key),
  };
}

/**
 * Check that the files make a TLS identity: every certificate in the CA bundle parses (at least
 * one), the certificate parses and is within its validity period, the key parses and is the
 * certificate's. Throws an Error naming the field and file.
 */
export function checkTlsIdentity(t: TlsFiles, pem: TlsPem, now = new Date()): void {
  const blocks = pem.ca.toString('latin1').match(PEM_CERT) ?? [];
  if (blocks.length === 0) throw new Error(`api_cafile: ${t.ca} holds no PEM certificate`);
  blocks.forEach((b, i) => {
    try {
      new X509Certificate(b);
    } catch {
      throw new Error(`api_cafile: certificate ${i + 1} of ${blocks.length} in ${t.ca} does not parse`);
    }
  });
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(pem.cert);
  } catch {
    throw new Error(`api_certfile: ${t.cert} is not a PEM certificate`);
  }
  const from = new Date(cert.validFrom);
  const to = new Date(cert.validTo);
  if (now < from) throw new Error(`api_certfile: ${t.cert} is not valid before ${from.toISOString()}`);
  if (now > to) throw new Error(`api_certfile: ${t.cert} expired on ${to.toISOString()}`);
  let key;
  try {
    key = createPrivateKey(pem.key);
  } catch {
    throw new Error(`api_keyfile: ${t.key} is not a PEM private key (or is encrypted)`);
  }
  if (!cert.checkPrivateKey(key))
    throw new Error(`api_keyfile: ${t.key} is not the key of api_certfile ${t.cert}`);
}
