/**
 * The starting point of docs/runbooks/tls-rotation.md, standing in for the operator's CA: a new CA
 * ("flotilla cluster CA 2") and, signed by it, one certificate per machine (IP SAN, role agent,
 * CN flotilla-mK-2) and an operator client certificate, made on the host with `openssl` (argv, no
 * shell; test/support/certs.ts) and copied into /root/tls-new/ of each machine (mode 0600), as an
 * operator would with scp.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inMachineOk, putFile } from '../support/cluster.js';
import { issueCert } from '../support/certs.js';
import { machineIp } from '../support/testbed.js';

export async function tlsRotationSetup(machines: readonly string[]): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'flotilla-rb-tls-'));
  try {
    // The page checks the issuer's name: the CA is made with it (makeCa names it after the file).
    const subjCa = '/CN=flotilla cluster CA 2';
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'rsa:2048',
        '-nodes',
        '-days',
        '2',
        '-subj',
        subjCa,
        '-keyout',
        'ca2.key',
        '-out',
        'ca2.pem',
      ],
      { cwd: dir, stdio: 'pipe' },
    );
    writeFileSync(
      join(dir, 'operator.ext'),
      'subjectAltName=URI:urn:flotilla:role:operator\nextendedKeyUsage=clientAuth\n',
    );
    issueCert(dir, 'operator', 'ca2', 'operator.ext', '/CN=operator-2');
    for (const m of machines) {
      writeFileSync(
        join(dir, `${m}.ext`),
        `subjectAltName=IP:${machineIp(m)},URI:urn:flotilla:role:agent\nextendedKeyUsage=serverAuth,clientAuth\n`,
      );
      issueCert(dir, m, 'ca2', `${m}.ext`, `/CN=flotilla-${m}-2`);
      await inMachineOk(m, 'sh', '-c', 'rm -rf /root/tls-new /root/tls-old && mkdir -m 700 /root/tls-new');
      const files: [string, string][] = [
        ['ca2.pem', 'ca2.pem'],
        [`${m}.pem`, 'agent.pem'],
        [`${m}.key`, 'agent.key'],
        ['operator.pem', 'operator.pem'],
        ['operator.key', 'operator.key'],
      ];
      for (const [from, to] of files)
        await putFile(m, `/root/tls-new/${to}`, readFileSync(join(dir, from), 'utf8'));
      await inMachineOk(m, 'sh', '-c', 'chmod 600 /root/tls-new/*');
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
