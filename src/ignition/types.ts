/**
 * An Ignition config in spec 3.x shape (the union of 3.0–3.4: later fields are simply absent in
 * earlier versions; 2.x configs are translated into this shape first). Optional fields may be null,
 * as Ignition's pointer fields may. Sections flotilla refuses (disks, raid, luks, filesystems,
 * kernelArguments) are kept loosely typed: they are only checked for presence.
 */

export interface Verification {
  hash?: string | null;
}

export interface HttpHeader {
  name: string;
  value?: string | null;
}

export interface Resource {
  source?: string | null;
  compression?: string | null;
  httpHeaders?: HttpHeader[];
  verification?: Verification;
}

export interface NodeOwner {
  id?: number | null;
  name?: string | null;
}

export interface StorageNode {
  path: string;
  overwrite?: boolean | null;
  user?: NodeOwner;
  group?: NodeOwner;
}

export interface IgnFile extends StorageNode {
  mode?: number | null;
  contents?: Resource;
  append?: Resource[];
}

export interface IgnDirectory extends StorageNode {
  mode?: number | null;
}

export interface IgnLink extends StorageNode {
  target?: string | null;
  hard?: boolean | null;
}

export interface IgnDropin {
  name: string;
  contents?: string | null;
}

export interface IgnUnit {
  name: string;
  enabled?: boolean | null;
  mask?: boolean | null;
  contents?: string | null;
  dropins?: IgnDropin[];
}

export interface IgnUser {
  name: string;
  passwordHash?: string | null;
  sshAuthorizedKeys?: string[];
  uid?: number | null;
  gecos?: string | null;
  homeDir?: string | null;
  noCreateHome?: boolean | null;
  primaryGroup?: string | null;
  groups?: string[];
  noUserGroup?: boolean | null;
  system?: boolean | null;
  noLogInit?: boolean | null;
  shell?: string | null;
  shouldExist?: boolean | null;
}

export interface IgnGroup {
  name: string;
  gid?: number | null;
  passwordHash?: string | null;
  system?: boolean | null;
  shouldExist?: boolean | null;
}

export interface IgnitionSection {
  version: string;
  config?: { merge?: Resource[]; replace?: Resource };
  timeouts?: { httpResponseHeaders?: number | null; httpTotal?: number | null };
  security?: { tls?: { certificateAuthorities?: Resource[] } };
  proxy?: { httpProxy?: string | null; httpsProxy?: string | null; noProxy?: (string | null)[] };
}

export interface IgnitionConfig {
  ignition: IgnitionSection;
  storage?: {
    disks?: unknown[];
    raid?: unknown[];
    luks?: unknown[];
    filesystems?: unknown[];
    files?: IgnFile[];
    directories?: IgnDirectory[];
    links?: IgnLink[];
  };
  systemd?: { units?: IgnUnit[] };
  passwd?: { users?: IgnUser[]; groups?: IgnGroup[] };
  kernelArguments?: { shouldExist?: string[]; shouldNotExist?: string[] };
}

/** One finding of validation, as ignition-validate reports it. */
export interface Issue {
  kind: 'error' | 'warning';
  /** `$.storage.files[0].mode` */
  path: string;
  line?: number;
  col?: number;
  message: string;
}

/** `error at $.storage.files[0].mode, line 5 col 17: must be integer` (ignition-validate's form). */
export function formatIssue(i: Issue): string {
  const where = i.line === undefined ? i.path : `${i.path}, line ${i.line} col ${i.col ?? 0}`;
  return `${i.kind} at ${where}: ${i.message}`;
}
