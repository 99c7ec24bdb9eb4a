/**
 * VMware guestinfo (host-tools.md §1.9, §2.3): the `GuestInfo` port and its real implementation.
 *
 * coreos-cloudinit talks to the VMware backdoor port itself; we send the same RPC,
 * `info-get guestinfo.KEY`, through open-vm-tools as cloud-init does: `vmware-rpctool
 * 'info-get guestinfo.KEY'`, falling back to `vmtoolsd --cmd 'info-get guestinfo.KEY'` when
 * vmware-rpctool is not installed. Always an argv, never a shell. A non-zero exit means the key is
 * not set (undefined); a tool that hangs is killed after the timeout and that is an error.
 *
 * Also here: the OVF environment (`guestinfo.ovfenv`, or an ovf-env.xml file), parsed for its
 * `PropertySection/Property key=… value=…`, and `withOvfDefaults`, where a direct guestinfo value
 * wins over the OVF property of the same key.
 */
import { readFile } from 'node:fs/promises';
import { FlotillaError } from '../lib/errors.js';
import { execArgv, type Exec } from './exec.js';

/** Reads one guestinfo key (without the `guestinfo.` prefix). Undefined when the key is not set. */
export interface GuestInfo {
  get(key: string): Promise<string | undefined>;
  /** Whether a way to reach guestinfo exists here (a tool on PATH). */
  reachable(): Promise<boolean>;
}

export interface ToolGuestInfoOptions {
  exec?: Exec;
  /** Per-call timeout in ms (default 5 000). */
  timeoutMs?: number;
}

/** guestinfo through vmware-rpctool, else vmtoolsd --cmd. */
export class ToolGuestInfo implements GuestInfo {
  private readonly exec: Exec;
  private readonly timeoutMs: number;
  /** The tool that worked (or undefined before the first call / when none is installed). */
  private tool: 'vmware-rpctool' | 'vmtoolsd' | 'none' | undefined;

  constructor(opts: ToolGuestInfoOptions = {}) {
    this.exec = opts.exec ?? execArgv;
    this.timeoutMs = opts.timeoutMs ?? 5_000;
  }

  private argv(tool: 'vmware-rpctool' | 'vmtoolsd', key: string): string[] {
    const rpc = `info-get guestinfo.${key}`;
    return tool === 'vmware-rpctool' ? [rpc] : ['--cmd', rpc];
  }

  async get(key: string): Promise<string | undefined> {
    if (!/^[A-Za-z0-9._-]+$/.test(key)) {
      throw new FlotillaError('E_DATASOURCE', `guestinfo: invalid key ${JSON.stringify(key)}`, { key });
    }
    const tools: ('vmware-rpctool' | 'vmtoolsd')[] =
      this.tool === 'vmware-rpctool' || this.tool === 'vmtoolsd'
        ? [this.tool]
        : ['vmware-rpctool', 'vmtoolsd'];
    if (this.tool === 'none') return undefined;
    for (const tool of tools) {
      const r = await this.exec(tool, this.argv(tool, key), { timeoutMs: this.timeoutMs });
      if (r.error === 'ENOENT') continue;
      this.tool = tool;
      if (r.error === 'TIMEOUT') {
        throw new FlotillaError(
          'E_DATASOURCE',
          `guestinfo.${key}: ${tool} did not answer within ${this.timeoutMs} ms`,
          { key, tool },
        );
      }
      if (r.code !== 0) return undefined;
      // The tools print the value and a newline.
      return r.stdout.toString('utf8').replace(/\r?\n$/, '');
    }
    this.tool = 'none';
    return undefined;
  }

  async reachable(): Promise<boolean> {
    if (this.tool === undefined) await this.get('ovfenv');
    return this.tool !== 'none';
  }
}

const ENTITIES: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" };

function unescapeXml(s: string): string {
  return s.replace(/&(#x[0-9a-fA-F]+|#[0-9]+|[a-z]+);/g, (m, e: string) => {
    if (e.startsWith('#x')) return String.fromCodePoint(parseInt(e.slice(2), 16));
    if (e.startsWith('#')) return String.fromCodePoint(parseInt(e.slice(1), 10));
    return ENTITIES[e] ?? m;
  });
}

/**
 * The properties of an OVF environment document (namespace
 * `http://schemas.dmtf.org/ovf/environment/1`, any prefix): key → value. Keys are as written,
 * e.g. `guestinfo.hostname`.
 */
export function parseOvfEnv(xml: string, source = 'ovfenv'): Map<string, string> {
  if (!/<(?:[\w.-]+:)?Environment\b/.test(xml)) {
    throw new FlotillaError('E_DATASOURCE', `${source}: not an OVF environment (no Environment element)`, {
      source,
    });
  }
  const out = new Map<string, string>();
  const body = xml.replace(/<!--[\s\S]*?-->/g, '');
  for (const m of body.matchAll(/<(?:[\w.-]+:)?Property\b([^>]*?)\/?>/g)) {
    const attrs = new Map<string, string>();
    for (const a of (m[1] ?? '').matchAll(/(?:[\w.-]+:)?(key|value)\s*=\s*(?:"([^"]*)"|'([^']*)')/g)) {
      attrs.set(a[1]!, unescapeXml(a[2] ?? a[3] ?? ''));
    }
    const key = attrs.get('key');
    if (key !== undefined) out.set(key, attrs.get('value') ?? '');
  }
  return out;
}

/** Read and parse an ovf-env.xml file (`-from-vmware-ovf-env PATH`). */
export async function readOvfEnvFile(path: string): Promise<Map<string, string>> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new FlotillaError('E_DATASOURCE', `-from-vmware-ovf-env ${path}: ${(err as Error).message}`, {
      path,
    });
  }
  return parseOvfEnv(text, path);
}

/** guestinfo answered by OVF properties only (an ovf-env.xml file: no tools needed). */
export class OvfGuestInfo implements GuestInfo {
  constructor(private readonly props: Map<string, string>) {}
  get(key: string): Promise<string | undefined> {
    return Promise.resolve(this.props.get(`guestinfo.${key}`));
  }
  reachable(): Promise<boolean> {
    return Promise.resolve(true);
  }
}

/**
 * Direct guestinfo keys with the OVF environment in `guestinfo.ovfenv` as defaults: a key set
 * directly (non-empty) wins over the OVF property (ignition PR #430; the rule). The OVF env is read
 * once.
 */
export class OvfDefaultsGuestInfo implements GuestInfo {
  private ovf: Promise<Map<string, string>> | undefined;
  constructor(private readonly direct: GuestInfo) {}
  private props(): Promise<Map<string, string>> {
    this.ovf ??= this.direct
      .get('ovfenv')
      .then((xml) =>
        xml === undefined || xml.trim() === ''
          ? new Map<string, string>()
          : parseOvfEnv(xml, 'guestinfo.ovfenv'),
      );
    return this.ovf;
  }
  async get(key: string): Promise<string | undefined> {
    const v = await this.direct.get(key);
    if (v !== undefined && v !== '') return v;
    return (await this.props()).get(`guestinfo.${key}`) ?? v;
  }
  reachable(): Promise<boolean> {
    return this.direct.reachable();
  }
}
