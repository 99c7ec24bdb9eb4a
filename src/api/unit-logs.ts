/**
 * `status` and `journal` of a unit on any machine, served by every agent:
 *
 *   GET /flotilla/v1/units/{name}/status?lines=N
 *       200 application/json {"name","machineID","exitCode","output"[,"container"][,"reason"]}:
 *       `systemctl status -l --no-pager --lines=N -- NAME` on the hosting machine (its stdout + stderr,
 *       and its exit code), plus what that machine's agent last reported: a container unit's
 *       `container` ({name, image, id, state, health, exitCode}) and the `reason` it failed or waits.
 *   GET /flotilla/v1/units/{name}/journal?lines=N&follow=true|false&output=MODE
 *       200 text/plain, chunked: `journalctl --unit=NAME --no-pager --lines=N --output=MODE [--follow]`
 *       on the hosting machine, streamed as produced; with follow the response stays open until the
 *       client goes away, and then journalctl is killed.
 *
 * Errors come before any body, with fleet's messages: 404 `Unit X does not exist.`, 409 `Unit X does
 * not appear to be loaded.` (status) / `... running.` (journal), 409 for global units, 502
 * `machine <id> (<ip>) is unreachable: ...`, 503 when the registry is down.
 *
 * When this agent does not host the unit it forwards the request to the hosting agent's TCP
 * listener (its address is in that machine's registry record), with mutual TLS using this agent's
 * own certificate, and relays the answer as it comes. Never over plaintext: without TLS files the
 * forward is refused (502). A forwarded request (header X-Flotilla-Forwarded) is always run locally,
 * so a request is never forwarded twice.
 *
 * Commands run with execFile/spawn and an argv array (never a shell); the unit name is validated.
 */
import { JOURNAL_OUTPUTS } from '../systemd/journal.js';
import { execFile, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { PassThrough } from 'node:stream';
import type { Registry } from '../registry/registry.js';
import { UnitFile, fleetRequirements, validateUnitName } from '../unit/index.js';
import { currentState } from './fleet-v1.js';
import { HttpError, type ApiRequest, type ApiResponse } from './http.js';

export const FORWARDED_HEADER = 'x-flotilla-forwarded';

/** TLS files this agent uses as a client towards its peers (the same as its own listener's). */
export interface PeerTls {
  ca: string;
  cert: string;
  key: string;
}

export interface UnitLogsDeps {
  registry: Registry;
  /** This machine's ID. */
  machineID: string;
  /** Undefined: no TLS configured, forwarding is refused. */
  peerTls?: PeerTls | undefined;
  /** Command prefixes; default ['systemctl'] and ['journalctl']. */
  systemctl?: readonly string[];
  journalctl?: readonly string[];
  /** How long to wait for a peer's response headers (ms); default 5000. */
  connectTimeoutMs?: number;
}

const MAX_LINES = 1_000_000;
/** Bytes of journal output buffered per client before journalctl is paused. */
export const JOURNAL_HIGH_WATER = 64 * 1024;

function linesParam(q: URLSearchParams): number {
  const v = q.get('lines');
  if (v === null || v === '') return 10;
  if (!/^\d{1,7}$/.test(v) || Number(v) > MAX_LINES) {
    throw new HttpError(400, `invalid lines ${JSON.stringify(v)}: must be an integer from 0 to ${MAX_LINES}`);
  }
  return Number(v);
}

function followParam(q: URLSearchParams): boolean {
  const v = q.get('follow');
  if (v === null || v === '' || v === 'false' || v === '0') return false;
  if (v === 'true' || v === '1') return true;
  throw new HttpError(400, `invalid follow ${JSON.stringify(v)}: must be true or false`);
}

function outputParam(q: URLSearchParams): string {
  const v = q.get('output');
  if (v === null || v === '') return 'short';
  if (!(JOURNAL_OUTPUTS as readonly string[]).includes(v)) {
    throw new HttpError(
      400,
      `invalid output ${JSON.stringify(v)}: must be one of ${JOURNAL_OUTPUTS.join(', ')}`,
    );
  }
  return v;
}

/** Kill a child: SIGTERM, then SIGKILL after 2 s if it is still there. */
function kill(child: ReturnType<typeof spawn>): void {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGTERM');
  const t = setTimeout(() => child.kill('SIGKILL'), 2000);
  t.unref();
  child.once('close', () => clearTimeout(t));
}

export class UnitLogs {
  private readonly systemctl: readonly string[];
  private readonly journalctl: readonly string[];

  constructor(private readonly d: UnitLogsDeps) {
    this.systemctl = d.systemctl ?? ['systemctl'];
    this.journalctl = d.journalctl ?? ['journalctl'];
  }

  async status(name: string, req: ApiRequest): Promise<ApiResponse> {
    validateUnitName(name);
    const lines = linesParam(req.query);
    if (!(await this.isForwarded(name, req))) {
      const host = await this.locate(name, 'status');
      if (host !== this.d.machineID) return this.forward(host, req);
    }
    return this.localStatus(name, lines);
  }

  async journal(name: string, req: ApiRequest): Promise<ApiResponse> {
    validateUnitName(name);
    const lines = linesParam(req.query);
    const follow = followParam(req.query);
    const output = outputParam(req.query);
    if (!(await this.isForwarded(name, req))) {
      const host = await this.locate(name, 'journal');
      if (host !== this.d.machineID) return this.forward(host, req);
    }
    return this.localJournal(name, lines, follow, output, req.signal);
  }

  /**
   * A request another agent forwarded here: run locally without the placement lookup. Only an
   * `agent`-role caller may say so (anyone else's header is ignored and the unit is located as
   * usual), and the unit must still be in the registry: this never reads a host unit (sshd, …).
   */
  private async isForwarded(name: string, req: ApiRequest): Promise<boolean> {
    if (req.headers[FORWARDED_HEADER] === undefined || !req.roles?.has('agent')) return false;
    if (!(await this.d.registry.getUnit(name))) throw new HttpError(404, `Unit ${name} does not exist.`);
    return true;
  }

  /** The machine that hosts `name`, or the 404/409 fleetctl gives. */
  private async locate(name: string, what: 'status' | 'journal'): Promise<string> {
    const reg = this.d.registry;
    const [u, sched, states] = await Promise.all([
      reg.getUnit(name),
      reg.getSchedule(name),
      reg.unitStatesOf(name),
    ]);
    if (!u) throw new HttpError(404, `Unit ${name} does not exist.`);
    let global = false;
    try {
      global = fleetRequirements(name, UnitFile.parse(u.body)).global;
    } catch {
      /* stored before validation existed: not global */
    }
    if (global) {
      throw new HttpError(
        409,
        what === 'status'
          ? `Unit ${name} is global: status is per machine`
          : `Unable to retrieve journal of global unit ${name}.`,
      );
    }
    const view = {
      schedules: new Map(sched ? [[name, sched]] : []),
      states: new Map([[name, new Map(states.map((s) => [s.machineID, s]))]]),
    };
    if (currentState(view, name, false) === 'inactive' || !sched?.machineID) {
      throw new HttpError(
        409,
        what === 'status'
          ? `Unit ${name} does not appear to be loaded.`
          : `Unit ${name} does not appear to be running.`,
      );
    }
    return sched.machineID;
  }

  private localStatus(name: string, lines: number): Promise<ApiResponse> {
    const [cmd, ...lead] = this.systemctl;
    const args = [...lead, 'status', '-l', '--no-pager', `--lines=${lines}`, '--', name];
    return new Promise((resolve, reject) => {
      execFile(
        cmd!,
        args,
        {
          encoding: 'utf8',
          timeout: 15_000,
          maxBuffer: 16 * 1024 * 1024,
          env: { ...process.env, SYSTEMD_COLORS: '0' },
        },
        (err, stdout, stderr) => {
          let exitCode = 0;
          if (err) {
            const code = (err as NodeJS.ErrnoException).code;
            if (typeof code !== 'number') {
              reject(new HttpError(500, `cannot run ${cmd}: ${err.message}`));
              return;
            }
            exitCode = code;
          }
          // What the agent last reported for the unit here: a container unit's container (state,
          // health, exit code) and why it failed or waits. Best effort: the output is the answer.
          void this.d.registry
            .unitStatesOf(name)
            .then((states) => states.find((st) => st.machineID === this.d.machineID))
            .catch(() => undefined)
            .then((st) =>
              resolve({
                status: 200,
                body: {
                  name,
                  machineID: this.d.machineID,
                  exitCode,
                  output: stdout + stderr,
                  ...(st?.container ? { container: st.container } : {}),
                  ...(st?.reason ? { reason: st.reason } : {}),
                },
              }),
            );
        },
      );
    });
  }

  private async localJournal(
    name: string,
    lines: number,
    follow: boolean,
    output: string,
    signal: AbortSignal | undefined,
  ): Promise<ApiResponse> {
    const [cmd, ...lead] = this.journalctl;
    const args = [
      ...lead,
      `--unit=${name}`,
      '--no-pager',
      `--lines=${lines}`,
      `--output=${output}`,
      ...(follow ? ['--follow'] : []),
    ];
    const child = spawn(cmd!, args, {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, SYSTEMD_COLORS: '0', SYSTEMD_PAGER: '' },
    });
    // Either it starts, or the error is the response (nothing was sent yet).
    await new Promise<void>((resolve, reject) => {
      child.once('spawn', resolve);
      child.once('error', (err) => reject(new HttpError(500, `cannot run ${cmd}: ${err.message}`)));
    });
    // Backpressure: stdout and stderr are piped into one bounded stream. While the client's socket
    // is full, send() waits for 'drain', this stream's buffer fills, pipe() pauses journalctl's
    // pipes and journalctl blocks in write(2). What waits here is at most a few highWaterMarks.
    const out = new PassThrough({ highWaterMark: JOURNAL_HIGH_WATER });
    let open = 2;
    const ended = () => {
      if (--open === 0) out.end();
    };
    child.stdout.once('end', ended);
    child.stderr.once('end', ended);
    child.stdout.pipe(out, { end: false });
    child.stderr.pipe(out, { end: false });
    // The consumer stopped (client gone, or the iteration returned): journalctl goes too.
    out.once('close', () => kill(child));
    if (signal?.aborted) kill(child);
    signal?.addEventListener(
      'abort',
      () => {
        kill(child);
        out.destroy();
      },
      { once: true },
    );
    return { status: 200, headers: { 'Content-Type': 'text/plain; charset=utf-8' }, stream: out };
  }

  /** Relay the request to the agent on `machineID` over mutual TLS. */
  private async forward(machineID: string, req: ApiRequest): Promise<ApiResponse> {
    const rec = (await this.d.registry.listMachines()).find((m) => m.id === machineID);
    const who = `machine ${machineID} (${rec?.publicIP ?? 'address unknown'})`;
    const unreachable = (why: string) => new HttpError(502, `${who} is unreachable: ${why}`);
    if (!rec) throw unreachable('it is not in the cluster');
    if (!rec.api) throw unreachable('it publishes no peer API address (api_listen is not set there)');
    const tls = this.d.peerTls;
    if (!tls) {
      throw unreachable(
        'this agent has no TLS identity for peers (set api_listen, api_cafile, api_certfile, api_keyfile); requests are never forwarded in plaintext',
      );
    }
    const i = rec.api.lastIndexOf(':');
    const host = rec.api.slice(0, i).replace(/^\[(.*)\]$/, '$1');
    const port = Number(rec.api.slice(i + 1));
    let ca: Buffer, cert: Buffer, key: Buffer;
    try {
      [ca, cert, key] = [readFileSync(tls.ca), readFileSync(tls.cert), readFileSync(tls.key)];
    } catch (err) {
      throw unreachable(`cannot read this agent's TLS files: ${(err as Error).message}`);
    }
    const qs = req.query.toString();
    const path = `${req.path}${qs ? `?${qs}` : ''}`;
    return new Promise<ApiResponse>((resolve, reject) => {
      const out = httpsRequest(
        {
          host,
          port,
          method: 'GET',
          path,
          ca,
          cert,
          key,
          minVersion: 'TLSv1.2',
          headers: { [FORWARDED_HEADER]: this.d.machineID },
        },
        (res) => {
          clearTimeout(timer);
          const headers: Record<string, string> = {};
          const ct = res.headers['content-type'];
          if (ct) headers['Content-Type'] = ct;
          resolve({ status: res.statusCode ?? 502, headers, stream: res });
        },
      );
      const timer = setTimeout(
        () => out.destroy(new Error(`no answer within ${this.d.connectTimeoutMs ?? 5000} ms`)),
        this.d.connectTimeoutMs ?? 5000,
      );
      out.on('error', (err) => {
        clearTimeout(timer);
        reject(unreachable(err.message));
      });
      // The client went away: drop the peer connection, so the peer kills its journalctl.
      req.signal?.addEventListener('abort', () => out.destroy(), { once: true });
      out.end();
    });
  }
}
