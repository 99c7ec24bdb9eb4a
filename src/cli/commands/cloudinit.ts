/**
 * `flotilla cloudinit` (also installed as `coreos-cloudinit`): coreos-cloudinit's command line
 * (host-tools.md §1.1) over src/cloudinit/. Flags keep coreos-cloudinit's names and Go's single
 * dash (`-from-file F`, `-validate`), and also take `--flag`. `--root DIR` applies into a directory
 * tree instead of the running system (no hostname call, no unit commands, scripts written only).
 *
 * Datasources: -from-file, -from-url, -from-configdrive (a directory or a block device),
 * -from-proc-cmdline, -from-vmware-guestinfo, -from-vmware-ovf-env. The cloud metadata services
 * (EC2, GCE, DigitalOcean, Packet, CloudSigma, Azure) are refused with E_DATASOURCE naming the
 * flag. With none given it prints the accepted flags and exits 2, as coreos-cloudinit does.
 */
import type { SourceFlags } from '../../datasource/index.js';
import { FlotillaError } from '../../lib/errors.js';
import type { Logger } from '../../lib/log.js';
import { CliExit, type Command, type Context, type FlagSpec } from '../command.js';

const SOURCE_FLAGS = [
  'from-file',
  'from-url',
  'from-configdrive',
  'from-configdrive-label',
  'from-proc-cmdline',
  'from-vmware-guestinfo',
  'from-vmware-ovf-env',
] as const;

/** coreos-cloudinit datasources flotilla does not have (cloud metadata services). */
const UNSUPPORTED = [
  'from-ec2-metadata',
  'from-metadata-service',
  'from-gce-metadata',
  'from-cloudsigma-metadata',
  'from-digitalocean-metadata',
  'from-packet-metadata',
  'from-waagent',
] as const;

/** `-oem NAME` presets (§1.1); the metadata-service ones are refused as their flags are. */
const OEM: Record<string, Record<string, string | boolean>> = {
  vmware: { 'from-vmware-guestinfo': true, 'convert-netconf': 'vmware' },
  'ec2-compat': { 'from-ec2-metadata': 'http://169.254.169.254/', 'from-configdrive': '/media/configdrive' },
  'rackspace-onmetal': { 'from-configdrive': '/media/configdrive', 'convert-netconf': 'debian' },
  digitalocean: { 'from-digitalocean-metadata': 'http://169.254.169.254/' },
  gce: { 'from-gce-metadata': 'http://metadata.google.internal/' },
  azure: { 'from-waagent': '/var/lib/waagent' },
  cloudsigma: { 'from-cloudsigma-metadata': true },
  packet: { 'from-packet-metadata': 'https://metadata.packet.net/' },
};

const str = (help: string, value = 'VALUE', extra: Partial<FlagSpec> = {}): FlagSpec => ({
  type: 'string',
  value,
  help,
  ...extra,
});
const bool = (help: string, extra: Partial<FlagSpec> = {}): FlagSpec => ({ type: 'boolean', help, ...extra });

const flags: Record<string, FlagSpec> = {
  'from-file': str('Read user-data from provided file', 'PATH'),
  'from-url': str('Download user-data from provided url', 'URL'),
  'from-configdrive': str('Read data from provided cloud-drive directory (or block device)', 'DIR'),
  'from-configdrive-label': str(
    'Find the config drive by its file-system label, e.g. config-2, and read it mounted read-only (flotilla; the boot unit uses it)',
    'LABEL',
  ),
  'from-proc-cmdline': bool("Parse /proc/cmdline for 'cloud-config-url'"),
  'from-vmware-guestinfo': bool('Read data from VMware guestinfo'),
  'from-vmware-ovf-env': str('Read data from provided VMware OVF environment file', 'PATH'),
  validate: bool('[EXPERIMENTAL] Validate the user-data but do not apply it to the system'),
  oem: str(`Use the settings specific to the provided OEM (${Object.keys(OEM).sort().join(', ')})`, 'NAME'),
  'convert-netconf': str(
    'Read the network config provided in cloud-drive and translate it from the specified format into networkd unit files (vmware)',
    'FORMAT',
  ),
  workspace: str('Base directory coreos-cloudinit should use to store data', 'DIR', {
    default: '/var/lib/coreos-cloudinit',
  }),
  'ssh-key-name': str('Add SSH keys to the system with the given name', 'NAME', {
    default: 'coreos-cloudinit',
  }),
  'ignore-failure': bool('Exits with 0 status in the event of malformed input from user-data'),
  root: str('Apply into this directory tree instead of the running system (tests, image builds)', 'DIR'),
};
for (const name of UNSUPPORTED)
  flags[name] = { type: 'string', help: 'not supported by flotilla', hidden: true };

function textLogger(err: (s: string) => void): Logger {
  const at = (level: string) => (fields: Record<string, unknown>, msg: string) => {
    void fields;
    err(level === 'info' ? `${msg}\n` : `${level}: ${msg}\n`);
  };
  return { debug: () => undefined, info: at('info'), warn: at('warning'), error: at('error') };
}

function usageText(): string {
  const lines = Object.entries(flags)
    .filter(([, f]) => !f.hidden)
    .map(([n, f]) => `  -${n}${f.type === 'string' ? ` ${f.value ?? 'VALUE'}` : ''}\n    \t${f.help}`);
  return `Usage of coreos-cloudinit:\n${lines.join('\n')}\n`;
}

async function run(ctx: Context): Promise<number> {
  if (ctx.args.length > 0)
    throw new FlotillaError('E_USAGE', `cloudinit takes no arguments (got ${JSON.stringify(ctx.args[0])})`);
  const f: Record<string, string | boolean | undefined> = { ...ctx.flags };
  if (typeof f.oem === 'string' && f.oem !== '') {
    const preset = OEM[f.oem];
    if (!preset) {
      throw new CliExit(
        2,
        `Invalid option to -oem: ${JSON.stringify(f.oem)}. Supported options: ${Object.keys(OEM).sort().join(', ')}`,
      );
    }
    for (const [k, v] of Object.entries(preset)) if (!ctx.explicit.has(k)) f[k] = v;
  }
  const netconf = typeof f['convert-netconf'] === 'string' ? f['convert-netconf'] : '';
  if (netconf !== '' && !['debian', 'packet', 'vmware'].includes(netconf)) {
    throw new CliExit(
      2,
      `Invalid option to -convert-netconf: ${JSON.stringify(netconf)}. Supported options: "debian, packet, vmware"`,
    );
  }
  for (const name of UNSUPPORTED) {
    if (f[name] !== undefined && f[name] !== false) {
      throw new FlotillaError(
        'E_DATASOURCE',
        `-${name}: this datasource is not supported by flotilla (use -from-file, -from-url, -from-configdrive, -from-proc-cmdline or -from-vmware-guestinfo)`,
        { flag: name },
      );
    }
  }
  const sources: SourceFlags = {};
  if (typeof f['from-file'] === 'string') sources.fromFile = f['from-file'];
  if (typeof f['from-url'] === 'string') sources.fromUrl = f['from-url'];
  if (typeof f['from-configdrive'] === 'string') sources.fromConfigdrive = f['from-configdrive'];
  if (typeof f['from-configdrive-label'] === 'string')
    sources.fromConfigdriveLabel = f['from-configdrive-label'];
  if (f['from-proc-cmdline'] === true) sources.fromProcCmdline = true;
  if (f['from-vmware-guestinfo'] === true) sources.fromVmwareGuestinfo = true;
  if (typeof f['from-vmware-ovf-env'] === 'string') sources.fromVmwareOvfEnv = f['from-vmware-ovf-env'];
  if (Object.keys(sources).length === 0) {
    ctx.io.err(`Provide at least one of ${SOURCE_FLAGS.map((n) => `--${n}`).join(' ')}\n${usageText()}`);
    return 2;
  }
  const log = textLogger(ctx.io.err);
  // Loaded only now: the HTTP client behind the URL sources is not needed for the flag checks above.
  const { datasourcesFromFlags } = await import('../../datasource/index.js');
  const ds = datasourcesFromFlags(sources, { log });
  const root = typeof f.root === 'string' && f.root !== '' ? f.root : '/';
  const live = root === '/';
  if (netconf === 'debian' || netconf === 'packet')
    log.warn({}, `-convert-netconf ${netconf} is not supported; no network units are generated`);
  const { runCloudinit, systemdScriptRunner } = await import('../../cloudinit/run.js');
  const { applyPlan } = await import('../../target/apply.js');
  return runCloudinit({
    sources: ds,
    validateOnly: f.validate === true,
    root,
    live,
    workspace: String(f.workspace),
    sshKeyName: String(f['ssh-key-name']),
    convertNetconf: netconf === 'vmware',
    ignoreFailure: f['ignore-failure'] === true,
    env: ctx.env,
    log,
    print: (line) => ctx.io.out(`${line}\n`),
    apply: applyPlan,
    runScript: systemdScriptRunner,
  });
}

export const cloudinit: Command = {
  name: 'cloudinit',
  summary:
    'Apply a cloud-config (coreos-cloudinit): users, files, units, etcd and agent settings; -validate checks one',
  usage:
    'cloudinit [-from-file PATH | -from-url URL | -from-configdrive DIR | -from-proc-cmdline | -from-vmware-guestinfo | -from-vmware-ovf-env PATH] [-validate] [-oem NAME] [-convert-netconf vmware] [-workspace DIR] [-ssh-key-name NAME] [-ignore-failure] [--root DIR]',
  description:
    'coreos-cloudinit compatible: the same flags (single or double dash), report lines (`line N: error|warning: message`) and exit codes. ' +
    'Also installed as `coreos-cloudinit`. With --root DIR the config is applied into that tree (no hostname call, unit commands or scripts run).',
  flags,
  goFlags: true,
  complete: 'files',
  run,
};
