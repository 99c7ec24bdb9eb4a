/** verify (deprecated, as in fleetctl) and fd-forward (the remote end of `--tunnel`). */
import { connect } from 'node:net';
import { CliExit, type Command } from '../command.js';

export const verify: Command = {
  name: 'verify',
  summary: 'DEPRECATED - No longer works',
  usage: 'verify UNIT',
  hidden: true,
  run({ io }) {
    io.err('Command "verify" is deprecated, DEPRECATED - No longer works\n');
    io.err('WARNING: The signed/verified units feature is DEPRECATED and cannot be used.\n');
    return Promise.resolve(2);
  },
};

export const fdForward: Command = {
  name: 'fd-forward',
  summary: 'Proxy stdin and stdout to a unix domain socket',
  usage: 'fd-forward SOCKET',
  description:
    'Copies stdin to a unix domain socket and the socket to stdout. Run over SSH on a bastion by\n' +
    '`--tunnel` (the remote command is `fleetctl fd-forward /var/run/fleet.sock`).',
  hidden: true,
  complete: 'files',
  run({ args }) {
    if (args.length !== 1) throw new CliExit(1, 'Provide a single argument: location of UNIX domain socket.');
    return new Promise((resolve) => {
      const sock = connect(args[0]!);
      sock.on('connect', () => {
        process.stdin.pipe(sock);
        sock.pipe(process.stdout);
      });
      sock.on('error', (err) => {
        process.stderr.write(`Unable to connect to UNIX domain socket ${args[0]!}: ${err.message}\n`);
        resolve(1);
      });
      sock.on('close', () => resolve(0));
      process.stdin.on('end', () => sock.end());
    });
  },
};
