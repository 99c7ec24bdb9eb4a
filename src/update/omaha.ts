/**
 * The Omaha v3 transport, as CoreOS update_engine and Nebraska/CoreUpdate speak it (docs/update-flow.md
 * "Omaha"). `buildRequest` makes the POSTed XML (every attribute escaped), `parseResponse` reads the
 * answer strictly (E_UPDATE_OMAHA naming the element or attribute), `omahaSource` plugs it into the
 * engine: the update check asks Omaha, and the events (13 download started, 14 download finished,
 * 800 installed, 3/2 update complete after the reboot, 3/0 error) are reported back.
 *
 * Signature rule: Omaha only says where and what. The response lists two packages — the signed
 * bundle manifest (`*.json`, the same envelope the plain transport serves) and its payload. The
 * manifest is then fetched and its ed25519 signature checked as always, and it must agree with the
 * response: payload name, size and the postinstall `sha256` (base64) — a difference is
 * E_UPDATE_VERIFY before a payload byte is fetched, and the payload's SHA-256 is checked again
 * before it is staged, so no byte reaches the slot that both Omaha and the signature did not vouch for.
 */
import { createHash, randomUUID } from 'node:crypto';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { got } from 'got';
import { redactUrl } from '../datasource/http.js';
import { FlotillaError, isErrno } from '../lib/errors.js';
import { sleep } from '../lib/backoff.js';
import { writeAtomic } from '../lib/fs.js';
import { nullLogger, type Logger } from '../lib/log.js';
import { HOST_PATHS } from '../lib/paths.js';
import type { Manifest } from './bundle.js';
import { parseXml, xmlElement, XmlError, type XmlBuild, type XmlNode } from './omaha-xml.js';

/** CoreOS's (and Flatcar's) Omaha application id. */
export const COREOS_APPID = '{e96281a6-d1af-4bde-9a0a-97b76e56dc57}';
export const MAX_RESPONSE_BYTES = 64 * 1024;

export const EVENT = {
  updateComplete: 3,
  downloadStarted: 13,
  downloadFinished: 14,
  installed: 800,
} as const;
export const RESULT = { error: 0, success: 1, successReboot: 2 } as const;

export interface OmahaEvent {
  type: number;
  result: number;
  errorCode?: number;
  previousVersion?: string;
}

export interface OmahaParams {
  appid: string;
  version: string;
  track: string;
  board: string;
  arch: string;
  machineId: string;
  bootId: string;
  oem?: string;
  /** true: a check the user asked for (installsource ondemandupdate), else scheduler. */
  interactive?: boolean;
}

export function buildRequest(
  p: OmahaParams,
  what: { updateCheck: boolean; ping?: boolean; events?: readonly OmahaEvent[] },
): string {
  const body: XmlBuild[] = [];
  if (what.ping) body.push({ name: 'ping', attrs: { active: 1 } });
  if (what.updateCheck) body.push({ name: 'updatecheck' });
  for (const e of what.events ?? [])
    body.push({
      name: 'event',
      attrs: {
        eventtype: e.type,
        eventresult: e.result,
        errorcode: e.errorCode,
        previousversion: e.previousVersion,
      },
    });
  const req: XmlBuild = {
    name: 'request',
    attrs: {
      protocol: '3.0',
      version: 'flotilla-0.1.0',
      updaterversion: 'flotilla-0.1.0',
      installsource: p.interactive ? 'ondemandupdate' : 'scheduler',
      ismachine: 1,
    },
    children: [
      { name: 'os', attrs: { version: 'Chateau', platform: 'CoreOS', sp: `${p.version}_${p.arch}` } },
      {
        name: 'app',
        attrs: {
          appid: p.appid,
          version: p.version,
          track: p.track,
          bootid: p.bootId,
          oem: p.oem,
          machineid: p.machineId,
          lang: 'en-US',
          board: p.board,
          hardware_class: '',
          delta_okay: 'false',
        },
        children: body,
      },
    ],
  };
  return `<?xml version="1.0" encoding="UTF-8"?>\n${xmlElement(req)}\n`;
}

export interface OmahaPackage {
  name: string;
  size: number;
  /** hex, from Nebraska's `hash_sha256` when present. */
  hashSha256?: string;
}

export type OmahaAnswer =
  | { kind: 'noupdate' }
  | {
      kind: 'update';
      version: string;
      codebases: string[];
      /** The signed bundle manifest package (`*.json`). */
      manifest: OmahaPackage;
      /** The payload package. */
      payload: OmahaPackage;
      /** The postinstall action's sha256 (of the payload), as lower-case hex. */
      sha256: string;
    };

const bad = (msg: string, line?: number) =>
  new FlotillaError('E_UPDATE_OMAHA', `Omaha response: ${line ? `line ${line}: ` : ''}${msg}`);

function one(parent: XmlNode, name: string, path: string): XmlNode {
  const kids = parent.children.filter((c) => c.name === name);
  if (kids.length !== 1) throw bad(`${path}: expected one <${name}>, found ${kids.length}`, parent.line);
  return kids[0]!;
}

function attr(n: XmlNode, key: string, path: string): string {
  const v = n.attrs[key];
  if (v === undefined || v === '') throw bad(`<${path}> has no ${key}= attribute`, n.line);
  return v;
}

function pkg(n: XmlNode): OmahaPackage {
  const name = attr(n, 'name', 'package');
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,200}$/.test(name))
    throw bad(`<package name=${JSON.stringify(name)}> is not a plain file name`, n.line);
  const sz = attr(n, 'size', 'package');
  if (!/^\d{1,15}$/.test(sz) || Number(sz) <= 0)
    throw bad(`<package name="${name}"> size=${JSON.stringify(sz)} is not a positive integer`, n.line);
  const h = n.attrs['hash_sha256'];
  if (h !== undefined && !/^[0-9a-fA-F]{64}$/.test(h))
    throw bad(`<package name="${name}"> hash_sha256= is not 64 hex digits`, n.line);
  return { name, size: Number(sz), ...(h ? { hashSha256: h.toLowerCase() } : {}) };
}

/** Parse an update-check answer for `appid`; E_UPDATE_OMAHA naming what is wrong. */
export function parseResponse(body: string | Buffer, appid: string): OmahaAnswer {
  if (body.length > MAX_RESPONSE_BYTES) throw bad(`over ${MAX_RESPONSE_BYTES} bytes (oversized)`);
  let root: XmlNode;
  try {
    root = parseXml(typeof body === 'string' ? body : body.toString('utf8'));
  } catch (err) {
    if (err instanceof XmlError) throw bad(`malformed XML: ${err.message}`);
    throw err;
  }
  if (root.name !== 'response') throw bad(`the root element is <${root.name}>, not <response>`, root.line);
  if (root.attrs['protocol'] !== '3.0')
    throw bad(`<response protocol=${JSON.stringify(root.attrs['protocol'] ?? '')}> is not 3.0`, root.line);
  const apps = root.children.filter((c) => c.name === 'app');
  const ours = apps.filter((a) => (a.attrs['appid'] ?? '').toLowerCase() === appid.toLowerCase());
  if (ours.length !== 1) {
    const seen = apps.map((a) => a.attrs['appid'] ?? '(none)').join(', ') || 'none';
    throw bad(`expected one <app appid="${appid}">, found appid ${seen} (wrong appid)`, root.line);
  }
  const app = ours[0]!;
  if (app.attrs['status'] !== 'ok')
    throw bad(`<app status=${JSON.stringify(app.attrs['status'] ?? '')}>`, app.line);
  const uc = one(app, 'updatecheck', 'app');
  const st = uc.attrs['status'];
  if (st === 'noupdate') return { kind: 'noupdate' };
  if (st !== 'ok') throw bad(`<updatecheck status=${JSON.stringify(st ?? '')}>`, uc.line);
  const urls = one(uc, 'urls', 'updatecheck').children.filter((c) => c.name === 'url');
  if (urls.length === 0) throw bad('<urls> has no <url>', uc.line);
  const codebases = urls.map((u) => {
    const cb = attr(u, 'codebase', 'url');
    let parsed: URL;
    try {
      parsed = new URL(cb);
    } catch {
      throw bad(`<url codebase=${JSON.stringify(cb)}> is not a URL`, u.line);
    }
    if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:')
      throw bad(`<url codebase=${JSON.stringify(cb)}> is not http or https`, u.line);
    return parsed.href.endsWith('/') ? parsed.href : `${parsed.href}/`;
  });
  const manifest = one(uc, 'manifest', 'updatecheck');
  const version = attr(manifest, 'version', 'manifest');
  if (!/^[0-9A-Za-z][0-9A-Za-z.+_-]{0,63}$/.test(version))
    throw bad(`<manifest version=${JSON.stringify(version)}> is not a version`, manifest.line);
  const pkgs = one(manifest, 'packages', 'manifest')
    .children.filter((c) => c.name === 'package')
    .map(pkg);
  const jsons = pkgs.filter((p) => p.name.endsWith('.json'));
  const payloads = pkgs.filter((p) => !p.name.endsWith('.json'));
  if (jsons.length !== 1 || payloads.length !== 1)
    throw bad(
      `<packages> must list the signed bundle manifest (*.json) and one payload; found ${pkgs.map((p) => p.name).join(', ') || 'none'}`,
      manifest.line,
    );
  const actions = one(manifest, 'actions', 'manifest').children.filter(
    (c) => c.name === 'action' && c.attrs['event'] === 'postinstall',
  );
  if (actions.length !== 1) throw bad('<actions> needs one <action event="postinstall">', manifest.line);
  const b64 = attr(actions[0]!, 'sha256', 'action event="postinstall"');
  const raw = /^[A-Za-z0-9+/]{43}=$/.test(b64) ? Buffer.from(b64, 'base64') : undefined;
  if (!raw || raw.length !== 32)
    throw bad(`<action event="postinstall"> sha256= is not a base64 SHA-256`, actions[0]!.line);
  return {
    kind: 'update',
    version,
    codebases,
    manifest: jsons[0]!,
    payload: payloads[0]!,
    sha256: raw.toString('hex'),
  };
}

/** The signed manifest must say what Omaha said (E_UPDATE_VERIFY naming the field). */
export function checkAgainstOmaha(
  a: Extract<OmahaAnswer, { kind: 'update' }>,
  m: Manifest,
  bytes: Buffer,
): void {
  const mismatch = (what: string, omaha: string | number, signed: string | number) =>
    new FlotillaError(
      'E_UPDATE_VERIFY',
      `Omaha and the signed manifest disagree on ${what}: Omaha ${omaha}, signed manifest ${signed} (hash mismatch or tampering); nothing was downloaded`,
      { field: what },
    );
  if (a.manifest.hashSha256) {
    const h = createHash('sha256').update(bytes).digest('hex');
    if (h !== a.manifest.hashSha256)
      throw mismatch(`the manifest package hash_sha256`, a.manifest.hashSha256, h);
  }
  if (a.manifest.size !== bytes.length)
    throw mismatch('the manifest package size', a.manifest.size, bytes.length);
  if (m.sha256 !== a.sha256) throw mismatch('the payload sha256', a.sha256, m.sha256);
  if (m.payload !== a.payload.name) throw mismatch('the payload name', a.payload.name, m.payload);
  if (m.size !== a.payload.size) throw mismatch('the payload size', a.payload.size, m.size);
  if (a.payload.hashSha256 && a.payload.hashSha256 !== m.sha256)
    throw mismatch('the payload hash_sha256', a.payload.hashSha256, m.sha256);
  if (m.version !== a.version) throw mismatch('the version', a.version, m.version);
}

export interface PostOptions {
  attempts?: number;
  timeoutMs?: number;
  backoffMs?: number;
  signal?: AbortSignal;
}

/** POST one request; bounded body, time and attempts (a 4xx is final). Returns the body. */
export async function omahaPost(url: string, xml: string, o: PostOptions = {}): Promise<Buffer> {
  const attempts = o.attempts ?? 4;
  let last = '';
  for (let i = 1; i <= attempts; i++) {
    let oversize = false;
    try {
      const req = got.post(url, {
        body: xml,
        headers: { 'content-type': 'text/xml; charset=utf-8' },
        responseType: 'buffer',
        throwHttpErrors: false,
        followRedirect: false,
        retry: { limit: 0 },
        timeout: { request: o.timeoutMs ?? 30_000 },
        ...(o.signal ? { signal: o.signal } : {}),
      });
      void req.on('downloadProgress', (p: { transferred: number }) => {
        if (p.transferred > MAX_RESPONSE_BYTES) {
          oversize = true;
          req.cancel();
        }
      });
      const res = await req;
      if (res.statusCode >= 400 && res.statusCode < 500)
        throw new FlotillaError('E_UPDATE_OMAHA', `${redactUrl(url)}: HTTP ${res.statusCode}`, {
          httpStatus: res.statusCode,
        });
      if (res.statusCode !== 200) throw new Error(`HTTP ${res.statusCode}`);
      if (res.body.length > MAX_RESPONSE_BYTES) throw bad(`over ${MAX_RESPONSE_BYTES} bytes (oversized)`);
      return res.body;
    } catch (err) {
      if (oversize) throw bad(`over ${MAX_RESPONSE_BYTES} bytes (oversized)`);
      if (err instanceof FlotillaError) throw err;
      if (o.signal?.aborted) throw err;
      last = (err as Error).message;
      if (i < attempts) await sleep(Math.min((o.backoffMs ?? 500) * 2 ** (i - 1), 10_000));
    }
  }
  throw new FlotillaError(
    'E_UPDATE_DOWNLOAD',
    `${redactUrl(url)}: the Omaha server did not answer after ${attempts} attempts: ${last}`,
    { url: redactUrl(url) },
  );
}

function readId(file: string): string | undefined {
  try {
    return readFileSync(file, 'utf8').trim() || undefined;
  } catch {
    return undefined;
  }
}

/** The file that remembers an installed version so the first check after the reboot reports 3/2. */
export const INSTALLED_MARKER = 'omaha-installed.json';

export interface OmahaSourceOptions extends PostOptions {
  url: string;
  appid?: string;
  version: string;
  track: string;
  board: string;
  arch: string;
  stagingDir: string;
  machineId?: string;
  bootId?: string;
  interactive?: boolean;
  log?: Logger;
}

/** An update found by Omaha: where the signed manifest is, and the check that binds it to the answer. */
export interface ResolvedUpdate {
  manifestUrl: string;
  verify: (m: Manifest, bytes: Buffer) => void;
}

export type SourceEvent = 'download-started' | 'download-finished' | 'installed' | 'error';

export interface UpdateSource {
  /** undefined: the server says there is no update. */
  check(): Promise<ResolvedUpdate | undefined>;
  /** Best effort: a failure is logged, never fails the update. */
  event(e: SourceEvent, detail?: { version?: string; errorCode?: number }): Promise<void>;
}

/** The engine's update source for an Omaha server. */
export function omahaSource(o: OmahaSourceOptions): UpdateSource {
  const log = o.log ?? nullLogger;
  const appid = o.appid ?? COREOS_APPID;
  const params: OmahaParams = {
    appid,
    version: o.version,
    track: o.track,
    board: o.board,
    arch: o.arch,
    machineId: o.machineId ?? readId(HOST_PATHS.machineIdFile) ?? '',
    bootId: `{${o.bootId ?? readId('/proc/sys/kernel/random/boot_id') ?? randomUUID()}}`,
    ...(o.interactive ? { interactive: true } : {}),
  };
  const marker = join(o.stagingDir, INSTALLED_MARKER);
  const post = (xml: string, attempts?: number) =>
    omahaPost(o.url, xml, { ...o, ...(attempts ? { attempts } : {}) });
  return {
    async check() {
      const events: OmahaEvent[] = [];
      let installed: { version: string; previous: string } | undefined;
      try {
        installed = JSON.parse(readFileSync(marker, 'utf8')) as { version: string; previous: string };
      } catch (err) {
        if (!isErrno(err, 'ENOENT')) log.warn({ file: marker }, 'unreadable Omaha marker, ignored');
      }
      if (installed?.version === o.version)
        events.push({
          type: EVENT.updateComplete,
          result: RESULT.successReboot,
          previousVersion: installed.previous,
        });
      const body = await post(buildRequest(params, { updateCheck: true, ping: true, events }));
      if (installed) rmSync(marker, { force: true });
      const a = parseResponse(body, appid);
      if (a.kind === 'noupdate') return undefined;
      const https = new URL(o.url).protocol === 'https:';
      const base = a.codebases.find((c) => !https || c.startsWith('https:'));
      if (!base) throw bad('the server is https but every <url codebase> is http (TLS never downgrades)');
      return {
        manifestUrl: new URL(a.manifest.name, base).href,
        verify: (m, bytes) => checkAgainstOmaha(a, m, bytes),
      };
    },
    async event(e, detail) {
      const ev: OmahaEvent =
        e === 'download-started'
          ? { type: EVENT.downloadStarted, result: RESULT.success }
          : e === 'download-finished'
            ? { type: EVENT.downloadFinished, result: RESULT.success }
            : e === 'installed'
              ? { type: EVENT.installed, result: RESULT.success }
              : { type: EVENT.updateComplete, result: RESULT.error, errorCode: detail?.errorCode ?? 1 };
      if (e === 'installed' && detail?.version)
        writeAtomic(marker, JSON.stringify({ version: detail.version, previous: o.version }) + '\n', {
          mode: 0o600,
        });
      try {
        await post(buildRequest(params, { updateCheck: false, events: [ev] }), 2);
      } catch (err) {
        log.warn({ event: ev.type, error: (err as Error).message }, 'Omaha event not delivered');
      }
    },
  };
}
