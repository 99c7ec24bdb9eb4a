/**
 * `--tunnel HOST[:PORT]` for the API, as fleetctl did it: each HTTP connection is an
 * `ssh HOST fleetctl fd-forward SOCKET` child whose stdin/stdout carry the bytes to the agent's unix
 * socket on the bastion (the remote `fleetctl` is flotilla's, installed under that name).
 */
import { spawn } from 'node:child_process';
import { Duplex } from 'node:stream';
import { UsageError } from './command.js';
import { splitHostPort, sshOptions } from './ssh.js';

/** Characters allowed in the socket path we hand to the remote shell (no quoting needed). */
const SAFE_PATH = /^\/[A-Za-z0-9/._+-]*$/;

export function tunnelConnector(
  g: Record<string, string | boolean | undefined>,
  endpoint: string,
  env: NodeJS.ProcessEnv = process.env,
): () => Duplex {
  const url = new URL(endpoint.split(',')[0]!.trim());
  if (url.protocol !== 'unix:' && url.protocol !== 'file:') {
    throw new UsageError('--tunnel works with a unix:// endpoint only');
  }
  const socket = decodeURIComponent(url.pathname);
  if (!SAFE_PATH.test(socket)) {
    throw new UsageError(
      `--tunnel: socket path ${JSON.stringify(socket)} has characters the remote shell would interpret`,
    );
  }
  const { host, port } = splitHostPort(String(g.tunnel));
  if (host.startsWith('-'))
    throw new UsageError(`invalid argument ${JSON.stringify(g.tunnel)} for "--tunnel" flag`);
  const argv = [
    ...sshOptions(g, env, { tunnel: false }),
    '-p',
    port,
    '-T',
    '--',
    host,
    'fleetctl',
    'fd-forward',
    socket,
  ];
  return () => {
    const child = spawn('ssh', argv, { env, stdio: ['pipe', 'pipe', 'inherit'] });
    const duplex = Duplex.from({ readable: child.stdout, writable: child.stdin });
    child.on('error', (err) => duplex.destroy(new Error(`ssh ${host}: ${err.message}`)));
    child.on('exit', (code) => {
      if (code !== 0 && code !== null) duplex.destroy(new Error(`ssh ${host} exited with status ${code}`));
    });
    duplex.on('close', () => {
      if (child.exitCode === null) child.kill();
    });
    return duplex;
  };
}
