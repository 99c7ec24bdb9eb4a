/**
 * The typed cloud-config: a validated document decoded into plain values, as coreos-cloudinit's
 * NewCloudConfig + Decode did (host-tools.md §1.2, §1.5), with every field's line kept for errors.
 *
 * `parseCloudConfig` runs the validator first (the same code as `-validate`). Entries that made
 * coreos-cloudinit drop the whole config (a YAML error, a wrong type, which go-yaml refused to
 * decode) and the validator's errors (an invalid value, undecodable content, a file under /usr) are
 * an E_CLOUDCONFIG error listing every such line, so nothing is applied. Unknown and deprecated keys
 * stay warnings. write_files content is decoded here (parse time, as coreos-cloudinit did).
 */
import { FlotillaError } from '../lib/errors.js';
import { decodeContent, DecodeError } from './content.js';
import { COREOS, isSchema, type Field, type Schema } from './schema.js';
import {
  child,
  coerced,
  formatEntry,
  toVNode,
  validateCloudConfig,
  type Entry,
  type VNode,
} from './validate.js';
import { parseYaml } from './yaml.js';

export type Scalar = string | number | boolean;

/** A section (etcd, fleet …): the non-zero fields in declaration order, with their lines. */
export interface Section {
  fields: { key: string; env?: string; value: Scalar; line: number }[];
  line: number;
}

export interface WriteFile {
  index: number;
  line: number;
  path: string;
  pathLine: number;
  content: Buffer;
  /** Permission bits; 0o644 when not given. */
  mode: number;
  owner: string;
}

export interface DropIn {
  name: string;
  content: string;
}

export interface Unit {
  index: number;
  line: number;
  name: string;
  mask: boolean;
  enable: boolean;
  runtime: boolean;
  content: string;
  command: string;
  dropIns: DropIn[];
}

export interface User {
  index: number;
  line: number;
  name: string;
  passwd: string;
  sshAuthorizedKeys: string[];
  coreosSshImportGithub: string;
  coreosSshImportGithubUsers: string[];
  coreosSshImportUrl: string;
  gecos: string;
  homedir: string;
  noCreateHome: boolean;
  primaryGroup: string;
  groups: string[];
  noUserGroup: boolean;
  system: boolean;
  noLogInit: boolean;
  shell: string;
}

export interface CloudConfig {
  sshAuthorizedKeys: string[];
  hostname: string;
  hostnameLine: number;
  users: User[];
  writeFiles: WriteFile[];
  manageEtcHosts: string;
  manageEtcHostsLine: number;
  coreos: {
    etcd: Section;
    etcd2: Section;
    fleet: Section;
    flannel: Section;
    locksmith: Section;
    update: Section;
    oem: Section;
    units: Unit[];
  };
}

/** Entries that stop the config from being applied (see the module comment). */
export function isFatal(e: Entry): boolean {
  return e.kind === 'error' || e.typeError === true;
}

function zeroOf(t: Field['type']): Scalar {
  return t === 'int' || t === 'float64' ? 0 : t === 'bool' ? false : '';
}

function scalar(n: VNode | undefined, t: Field['type']): Scalar {
  if (!n) return zeroOf(t);
  return coerced(n.node, t) ?? zeroOf(t);
}

function str(n: VNode | undefined, key: string): string {
  return String(scalar(child(n, key), 'string'));
}

function bool(n: VNode | undefined, key: string): boolean {
  return scalar(child(n, key), 'bool') === true;
}

function strings(n: VNode | undefined, key: string): string[] {
  return (child(n, key)?.children ?? []).map((c) => String(scalar(c, 'string')));
}

function section(n: VNode | undefined, schema: Schema): Section {
  const fields: Section['fields'] = [];
  for (const [key, f] of Object.entries(schema)) {
    const c = child(n, key);
    if (!c || isSchema(f.type) || typeof f.type === 'object') continue;
    const v = scalar(c, f.type);
    if (v === '' || v === 0 || v === false) continue;
    fields.push({ key, ...(f.env ? { env: f.env } : {}), value: v, line: c.line });
  }
  return { fields, line: n?.line ?? 0 };
}

function bad(line: number, key: string, msg: string): FlotillaError {
  return new FlotillaError('E_CLOUDCONFIG', `line ${line}: ${key}: ${msg}`, { line, key });
}

function writeFile(f: VNode, index: number): WriteFile {
  const key = `write_files[${index}]`;
  const enc = str(f, 'encoding');
  const c = child(f, 'content');
  const raw = c?.node.binary ?? Buffer.from(str(f, 'content'), 'utf8');
  let content: Buffer;
  try {
    content = decodeContent(raw, enc);
  } catch (err) {
    if (err instanceof DecodeError) throw bad(c?.line ?? f.line, `${key}.content`, err.message);
    throw err;
  }
  const perm = str(f, 'permissions');
  let mode = 0o644;
  if (perm !== '') {
    if (!/^[0-7]+$/.test(perm))
      throw bad(
        child(f, 'permissions')!.line,
        `${key}.permissions`,
        `Unable to parse file permissions ${JSON.stringify(perm)} as integer`,
      );
    mode = parseInt(perm, 8);
  }
  return {
    index,
    line: f.line,
    path: str(f, 'path'),
    pathLine: child(f, 'path')?.line ?? f.line,
    content,
    mode,
    owner: str(f, 'owner'),
  };
}

function unit(u: VNode, index: number): Unit {
  return {
    index,
    line: u.line,
    name: str(u, 'name'),
    mask: bool(u, 'mask'),
    enable: bool(u, 'enable'),
    runtime: bool(u, 'runtime'),
    content: str(u, 'content'),
    command: str(u, 'command'),
    dropIns: (child(u, 'drop_ins')?.children ?? []).map((d) => ({
      name: str(d, 'name'),
      content: str(d, 'content'),
    })),
  };
}

function user(u: VNode, index: number): User {
  return {
    index,
    line: u.line,
    name: str(u, 'name'),
    passwd: str(u, 'passwd'),
    sshAuthorizedKeys: strings(u, 'ssh_authorized_keys'),
    coreosSshImportGithub: str(u, 'coreos_ssh_import_github'),
    coreosSshImportGithubUsers: strings(u, 'coreos_ssh_import_github_users'),
    coreosSshImportUrl: str(u, 'coreos_ssh_import_url'),
    gecos: str(u, 'gecos'),
    homedir: str(u, 'homedir'),
    noCreateHome: bool(u, 'no_create_home'),
    primaryGroup: str(u, 'primary_group'),
    groups: strings(u, 'groups'),
    noUserGroup: bool(u, 'no_user_group'),
    system: bool(u, 'system'),
    noLogInit: bool(u, 'no_log_init'),
    shell: str(u, 'shell'),
  };
}

export interface Parsed {
  config: CloudConfig;
  /** Every validator entry (warnings included), for the log. */
  entries: Entry[];
}

/** Validate and decode a `#cloud-config` text. Throws E_CLOUDCONFIG naming every fatal line. */
export function parseCloudConfig(text: string): Parsed {
  const entries = validateCloudConfig(text);
  const fatal = entries.filter(isFatal);
  if (fatal.length > 0) {
    throw new FlotillaError('E_CLOUDCONFIG', `invalid cloud-config:\n${fatal.map(formatEntry).join('\n')}`, {
      entries: fatal,
      line: fatal[0]!.line,
    });
  }
  const parsed = parseYaml(text);
  const root = parsed.root?.kind === 'map' ? toVNode(parsed.root, '') : undefined;
  const co = child(root, 'coreos');
  const config: CloudConfig = {
    sshAuthorizedKeys: strings(root, 'ssh_authorized_keys'),
    hostname: str(root, 'hostname'),
    hostnameLine: child(root, 'hostname')?.line ?? 0,
    users: (child(root, 'users')?.children ?? []).map(user),
    writeFiles: (child(root, 'write_files')?.children ?? []).map(writeFile),
    manageEtcHosts: str(root, 'manage_etc_hosts'),
    manageEtcHostsLine: child(root, 'manage_etc_hosts')?.line ?? 0,
    coreos: {
      etcd: section(child(co, 'etcd'), COREOS.etcd!.type as Schema),
      etcd2: section(child(co, 'etcd2'), COREOS.etcd2!.type as Schema),
      fleet: section(child(co, 'fleet'), COREOS.fleet!.type as Schema),
      flannel: section(child(co, 'flannel'), COREOS.flannel!.type as Schema),
      locksmith: section(child(co, 'locksmith'), COREOS.locksmith!.type as Schema),
      update: section(child(co, 'update'), COREOS.update!.type as Schema),
      oem: section(child(co, 'oem'), COREOS.oem!.type as Schema),
      units: (child(co, 'units')?.children ?? []).map(unit),
    },
  };
  return { config, entries };
}
