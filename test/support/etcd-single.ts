/**
 * A private single-member etcd for one test file or benchmark: real Debian `etcd`, its own data dir
 * (on disk, under os.tmpdir()), loopback ports picked free. Started detached (not a child of the test
 * worker) and killed by PID in `stop()`.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface SingleEtcd {
  endpoint: string;
  dataDir: string;
  pid: number;
  stop(): Promise<void>;
}

/** A loopback port that was free a moment ago (nothing listens on it once this resolves). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const addr = s.address();
      s.close(() => (typeof addr === 'object' && addr ? resolve(addr.port) : reject(new Error('no port'))));
    });
  });
}

export function etcdBinary(): string | undefined {
  for (const p of ['/usr/bin/etcd', '/usr/local/bin/etcd']) {
    try {
      execFileSync(p, ['--version'], { stdio: 'ignore' });
      return p;
    } catch {
      /* try the next */
    }
  }
  return undefined;
}

export interface TlsFiles {
  /** CA that signed both the server and the client certificate. */
  ca: string;
  serverCert: string;
  serverKey: string;
  /** Require a client certificate (`--client-cert-auth`). Default true. */
  clientCertAuth?: boolean;
}

export async function startSingleEtcd(tls?: TlsFiles): Promise<SingleEtcd> {
  const bin = etcdBinary();
  if (!bin)
    throw new Error('etcd is not installed (Debian package etcd-server; test/env/etcd.sh installs it)');
  const [client, peer] = [await freePort(), await freePort()];
  const dataDir = mkdtempSync(join(tmpdir(), 'flotilla-etcd-'));
  const endpoint = `${tls ? 'https' : 'http'}://127.0.0.1:${client}`;
  const args = [
    '--name',
    'single',
    '--data-dir',
    dataDir,
    '--listen-client-urls',
    endpoint,
    '--advertise-client-urls',
    endpoint,
    '--listen-peer-urls',
    `http://127.0.0.1:${peer}`,
    '--initial-advertise-peer-urls',
    `http://127.0.0.1:${peer}`,
    '--initial-cluster',
    `single=http://127.0.0.1:${peer}`,
    '--initial-cluster-state',
    'new',
    '--log-level',
    'error',
    ...(tls
      ? [
          '--cert-file',
          tls.serverCert,
          '--key-file',
          tls.serverKey,
          // etcd asks for a client certificate whenever it has a trusted CA file.
          ...(tls.clientCertAuth === false ? [] : ['--trusted-ca-file', tls.ca, '--client-cert-auth']),
        ]
      : []),
  ];
  // `&` in a fixed script detaches etcd from this process; the arguments are passed as "$@".
  const pid = Number(
    execFileSync('bash', ['-c', '"$0" "$@" >"$DATA/etcd.log" 2>&1 </dev/null & echo $!', bin, ...args], {
      encoding: 'utf8',
      env: { ...process.env, DATA: dataDir, ETCD_UNSUPPORTED_ARCH: process.env.ETCD_UNSUPPORTED_ARCH ?? '' },
    }).trim(),
  );
  const deadline = Date.now() + 15_000;
  for (;;) {
    if (tls) {
      // No client certificate here: wait for the port to accept TCP instead.
      const up = await new Promise<boolean>((resolve) => {
        const sock = connect(client, '127.0.0.1', () => {
          sock.destroy();
          resolve(true);
        });
        sock.once('error', () => resolve(false));
      });
      if (up) break;
    } else {
      try {
        const res = await fetch(`${endpoint}/health`);
        if (res.ok) break;
      } catch {
        /* not up yet */
      }
    }
    if (Date.now() > deadline) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* gone */
      }
      throw new Error(`single etcd did not become healthy on ${endpoint} (log: ${dataDir}/etcd.log)`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    endpoint,
    dataDir,
    pid,
    async stop() {
      try {
        process.kill(pid, 'SIGTERM');
      } catch {
        /* gone */
      }
      for (let i = 0; i < 50; i++) {
        try {
          process.kill(pid, 0);
          await new Promise((r) => setTimeout(r, 100));
        } catch {
          break;
        }
      }
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
