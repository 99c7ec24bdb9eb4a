/**
 * The few Docker Engine API reads an idle agent makes, over the engine's unix socket with node:http
 * alone: `GET /_ping`, `/containers/json`, `/containers/{id}/json` and the `/events` stream. Service
 * discovery and the container units' watch use only these, so an agent on a Docker host that runs no
 * container unit never loads dockerode (~14 MiB of RSS, issue 18); dockerode is loaded at the first
 * create, start, pull or log call (dockerode.ts).
 *
 * Same paths as dockerode sends (no API version prefix: the engine's own), same answers (the
 * engine's JSON), and failures shaped as dockerode's are (`statusCode` and `json` for an HTTP error,
 * the socket error's `code` otherwise), so `mapDockerError` treats both alike. A JSON answer is
 * bounded (MAX_JSON_BYTES); a stream is handed over as it comes.
 */
import { request, type IncomingMessage } from 'node:http';

/** Larger answers are refused: a list of ~100,000 containers, far beyond one machine's. */
export const MAX_JSON_BYTES = 64 * 1024 * 1024;

export type Query = Record<string, string | number | boolean | Record<string, string[]>>;

/** A Docker API error as dockerode's docker-modem makes it (what mapDockerError reads). */
export interface EngineError extends Error {
  statusCode?: number;
  json?: { message?: string } | string | null;
  code?: string;
}

export function queryString(q: Query): string {
  const parts = Object.entries(q).map(
    ([k, v]) =>
      `${encodeURIComponent(k)}=${encodeURIComponent(typeof v === 'object' ? JSON.stringify(v) : String(v))}`,
  );
  return parts.length > 0 ? `?${parts.join('&')}` : '';
}

function readAll(res: IncomingMessage, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    res.on('data', (c: Buffer) => {
      size += c.length;
      if (size > limit) {
        res.destroy(new Error(`docker answer larger than ${limit} bytes`));
        return;
      }
      chunks.push(c);
    });
    res.on('end', () => resolve(Buffer.concat(chunks)));
    res.on('error', reject);
    res.on('aborted', () => reject(new Error('docker answer cut off')));
  });
}

function httpError(status: number, body: Buffer): EngineError {
  const text = body.toString('utf8');
  let json: EngineError['json'] = text;
  try {
    json = JSON.parse(text) as { message?: string };
  } catch {
    // a plain-text error body is kept as the message
  }
  const msg =
    json && typeof json === 'object' && typeof json.message === 'string' ? json.message : text.trim();
  return Object.assign(new Error(`(HTTP code ${status}) ${msg}`), { statusCode: status, json });
}

export class EngineHttp {
  constructor(
    readonly socketPath: string,
    private readonly connectTimeoutMs: number,
  ) {}

  /** GET path; resolves with the response once its headers are in and the status is 2xx. */
  private open(path: string, signal?: AbortSignal): Promise<IncomingMessage> {
    return new Promise((resolve, reject) => {
      const req = request({
        socketPath: this.socketPath,
        path,
        method: 'GET',
        headers: { host: 'docker' },
        ...(signal ? { signal } : {}),
      });
      const connectTimer = setTimeout(() => {
        req.destroy(Object.assign(new Error(`connect timeout to ${this.socketPath}`), { code: 'ETIMEDOUT' }));
      }, this.connectTimeoutMs);
      req.on('socket', (s) => {
        if (!s.connecting) clearTimeout(connectTimer);
        else s.once('connect', () => clearTimeout(connectTimer));
      });
      req.on('error', (e) => {
        clearTimeout(connectTimer);
        reject(e);
      });
      req.on('response', (res) => {
        clearTimeout(connectTimer);
        const status = res.statusCode ?? 0;
        if (status >= 200 && status < 300) {
          resolve(res);
          return;
        }
        readAll(res, 64 * 1024).then(
          (body) => reject(httpError(status, body)),
          () => reject(httpError(status, Buffer.alloc(0))),
        );
      });
      req.end();
    });
  }

  /** GET a JSON answer (`/_ping` answers `OK`, returned as the string). */
  async getJson<T>(path: string, query: Query = {}, signal?: AbortSignal): Promise<T> {
    const res = await this.open(path + queryString(query), signal);
    const body = await readAll(res, MAX_JSON_BYTES);
    const text = body.toString('utf8');
    if (!(res.headers['content-type'] ?? '').includes('json')) return text as T;
    return JSON.parse(text) as T;
  }

  /** GET a stream (the /events NDJSON): the response, once the engine answered 2xx. */
  stream(path: string, query: Query = {}): Promise<IncomingMessage> {
    return this.open(path + queryString(query));
  }
}
