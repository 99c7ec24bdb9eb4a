/**
 * Throw-away PKI for TLS tests: a CA, a server certificate for 127.0.0.1/localhost (API role
 * `agent`, as an agent's own certificate), an `operator` client certificate, a `viewer` one, one with
 * no role and one from a stranger CA, made with the system's `openssl` (argv arrays, no shell) in a temp directory.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface Pki {
  dir: string;
  ca: string;
  serverCert: string;
  serverKey: string;
  clientCert: string;
  clientKey: string;
  /** A second, unrelated CA's client pair: must be refused. */
  strangerCert: string;
  strangerKey: string;
  /** Role `viewer`, given as the subject's OU. */
  viewerCert: string;
  viewerKey: string;
  /** Signed by the CA but with no flotilla role: must be refused by the API. */
  noRoleCert: string;
  noRoleKey: string;
}

function ossl(dir: string, ...args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
}

/** A self-signed CA `NAME.pem` / `NAME.key` in dir. */
export function makeCa(dir: string, name: string): void {
  ossl(
    dir,
    'req',
    '-x509',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-days',
    '2',
    '-subj',
    `/CN=${name}`,
    '-keyout',
    `${name}.key`,
    '-out',
    `${name}.pem`,
  );
}

/** A certificate `NAME.pem` / `NAME.key` in dir, signed by CA `caName`, extensions from file `ext`. */
export function issueCert(
  dir: string,
  name: string,
  caName: string,
  ext: string,
  subj = `/CN=${name}`,
): void {
  ossl(
    dir,
    'req',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-subj',
    subj,
    '-keyout',
    `${name}.key`,
    '-out',
    `${name}.csr`,
  );
  ossl(
    dir,
    'x509',
    '-req',
    '-in',
    `${name}.csr`,
    '-CA',
    `${caName}.pem`,
    '-CAkey',
    `${caName}.key`,
    '-CAcreateserial',
    '-days',
    '2',
    '-extfile',
    ext,
    '-out',
    `${name}.pem`,
  );
}

export function makePki(): Pki {
  const dir = mkdtempSync(join(tmpdir(), 'flotilla-pki-'));
  writeFileSync(
    join(dir, 'server.ext'),
    'subjectAltName=IP:127.0.0.1,DNS:localhost,URI:urn:flotilla:role:agent\nextendedKeyUsage=serverAuth,clientAuth\n',
  );
  writeFileSync(
    join(dir, 'client.ext'),
    'subjectAltName=URI:urn:flotilla:role:operator\nextendedKeyUsage=clientAuth\n',
  );
  writeFileSync(join(dir, 'plain.ext'), 'extendedKeyUsage=clientAuth\n');
  const ca = (name: string) => makeCa(dir, name);
  const leaf = (name: string, caName: string, ext: string, subj = `/CN=${name}`) =>
    issueCert(dir, name, caName, ext, subj);
  ca('ca');
  ca('stranger-ca');
  leaf('server', 'ca', 'server.ext');
  leaf('client', 'ca', 'client.ext');
  leaf('stranger', 'stranger-ca', 'client.ext');
  leaf('viewer', 'ca', 'plain.ext', '/CN=viewer/OU=viewer');
  leaf('norole', 'ca', 'plain.ext');
  const p = (f: string) => join(dir, f);
  return {
    dir,
    ca: p('ca.pem'),
    serverCert: p('server.pem'),
    serverKey: p('server.key'),
    clientCert: p('client.pem'),
    clientKey: p('client.key'),
    strangerCert: p('stranger.pem'),
    strangerKey: p('stranger.key'),
    viewerCert: p('viewer.pem'),
    viewerKey: p('viewer.key'),
    noRoleCert: p('norole.pem'),
    noRoleKey: p('norole.key'),
  };
}
