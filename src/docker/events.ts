/**
 * Docker's /events stream as the DockerPort's `events()`: container events only (the kinds the agent
 * reacts to), parsed from the engine's NDJSON, with reconnects under a backoff and connected /
 * disconnected callbacks. `followEvents` is given how to open one stream and how to turn a failure
 * into the port's error; it knows nothing of the client (dockerode.ts opens it with dockerode).
 */
import { Backoff } from '../lib/backoff.js';
import type { ContainerEvent, ContainerEventKind, EventStream, EventsOptions } from './port.js';

const EVENT_KINDS: ReadonlySet<string> = new Set([
  'create',
  'start',
  'die',
  'stop',
  'kill',
  'health_status',
  'destroy',
  'oom',
]);

interface RawEvent {
  Type?: string;
  Action?: string;
  status?: string;
  id?: string;
  Actor?: { ID?: string; Attributes?: Record<string, string> };
  timeNano?: number;
  time?: number;
}

/** One JSON line of /events → ContainerEvent, or undefined for events we do not report. */
export function parseEvent(raw: RawEvent): ContainerEvent | undefined {
  if (raw.Type !== undefined && raw.Type !== 'container') return undefined;
  const action = raw.Action ?? raw.status ?? '';
  const [verb, rest] = action.split(/:\s*/, 2) as [string, string | undefined];
  if (!EVENT_KINDS.has(verb)) return undefined;
  const attrs = { ...(raw.Actor?.Attributes ?? {}) };
  const id = raw.Actor?.ID ?? raw.id ?? '';
  const ev: ContainerEvent = {
    kind: verb as ContainerEventKind,
    id,
    labels: {},
    timeNano: raw.timeNano ?? (raw.time ?? 0) * 1e9,
  };
  if (attrs.name !== undefined) ev.name = attrs.name;
  if (attrs.image !== undefined) ev.image = attrs.image;
  if (verb === 'die' && attrs.exitCode !== undefined) ev.exitCode = Number(attrs.exitCode);
  if (verb === 'health_status') {
    const h = (rest ?? '').trim();
    ev.health = h === 'healthy' || h === 'unhealthy' || h === 'starting' ? h : 'none';
  }
  // Actor attributes mix labels with name/image/exitCode; labels are the dotted ones plus anything
  // not in Docker's fixed attribute set.
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'name' || k === 'image' || k === 'exitCode' || k === 'signal' || k === 'execDuration') continue;
    ev.labels[k] = v;
  }
  return ev;
}

/** The /events filters: container events of the kinds above, optionally only with these labels. */
export function eventFilters(labels?: readonly string[]): Record<string, string[]> {
  const filters: Record<string, string[]> = { type: ['container'], event: [...EVENT_KINDS] };
  if (labels && labels.length > 0) filters.label = [...labels];
  return filters;
}

export type EventSource = NodeJS.ReadableStream & { destroy?: () => void };

/**
 * Follow the events: `open(filters)` opens one stream; `fail(err)` makes the error handed to
 * `onDisconnected` (err undefined: the stream ended without one); `onClose` runs at close().
 */
export function followEvents(
  opts: EventsOptions,
  open: (filters: Record<string, string[]>) => Promise<EventSource>,
  fail: (err?: unknown) => Error,
  onClose?: () => void,
): EventStream & { close(): void } {
  const minMs = opts.minBackoffMs ?? 250;
  const maxMs = opts.maxBackoffMs ?? 5000;
  let closed = false;
  let connected = false;
  let everConnected = false;
  const backoff = new Backoff(minMs, maxMs);
  let timer: NodeJS.Timeout | undefined;
  let current: (NodeJS.ReadableStream & { destroy?: () => void }) | undefined;

  const filters = eventFilters(opts.labels);

  const lost = (err: Error): void => {
    if (closed) return;
    const was = connected || current !== undefined;
    connected = false;
    current = undefined;
    if (was || !timer) {
      try {
        opts.onDisconnected?.(err);
      } catch {
        // consumer bug; keep the stream alive
      }
    }
    if (timer) return;
    const delay = backoff.next();
    timer = setTimeout(() => {
      timer = undefined;
      void connect();
    }, delay);
    timer.unref?.();
  };

  const connect = async (): Promise<void> => {
    if (closed) return;
    let stream: NodeJS.ReadableStream & { destroy?: () => void };
    try {
      stream = await open(filters);
    } catch (err) {
      lost(fail(err));
      return;
    }
    if (closed) {
      stream.destroy?.();
      return;
    }
    current = stream;
    connected = true;
    backoff.reset();
    const reconnected = everConnected;
    everConnected = true;
    try {
      opts.onConnected?.(reconnected);
    } catch {
      // consumer bug
    }
    let buf = '';
    stream.on('data', (chunk: Buffer | string) => {
      buf += chunk.toString();
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl).trim();
        buf = buf.slice(nl + 1);
        if (!line) continue;
        let ev: ContainerEvent | undefined;
        try {
          ev = parseEvent(JSON.parse(line) as RawEvent);
        } catch {
          continue;
        }
        if (ev) {
          try {
            opts.onEvent(ev);
          } catch {
            // consumer bug
          }
        }
      }
    });
    let ended = false;
    const end = (err?: Error): void => {
      if (ended || current !== stream) return;
      ended = true;
      lost(fail(err));
    };
    stream.on('error', (e: Error) => end(e));
    stream.on('end', () => end());
    stream.on('close', () => end());
  };

  const handle = {
    get connected() {
      return connected;
    },
    close: () => {
      closed = true;
      connected = false;
      if (timer) clearTimeout(timer);
      timer = undefined;
      current?.destroy?.();
      current = undefined;
      onClose?.();
    },
  };
  void connect();
  return handle;
}
