/**
 * One D-Bus connection that reconnects by itself.
 *
 * CONTRACT
 * - The address is injectable: `address` option, else `$DBUS_SYSTEM_BUS_ADDRESS`, else
 *   `unix:path=/run/dbus/system_bus_socket`. (dbus-next's own `systemBus()` ignores options, so we
 *   always go through `sessionBus({ busAddress })`, which only means "connect to this address".)
 * - `call()` waits for the connection to be ready (connected + every setup hook done), then sends the
 *   method call and resolves with the reply body. It rejects with
 *   - `E_SYSTEMD_UNAVAILABLE` when the bus is not ready before the deadline or when the connection
 *     drops while the call is in flight (the call may or may not have been executed; calls marked
 *     `idempotent` are sent once more on the next connection instead);
 *   - `E_CLOSED` after `close()`;
 *   - `E_SYSTEMD_CALL` when the peer answers with a D-Bus error (`details.name` is the error name).
 * - When the connection goes away (dbus-daemon restart, socket closed, protocol error) it reconnects
 *   with exponential backoff, re-adds every match rule given to `addMatch`, and runs the setup hooks
 *   again (`{ reconnect: true }`) before new calls are let through. Signals are delivered raw to
 *   `onSignal` listeners; routing is the caller's job (one listener, routed by path: no per-object
 *   proxies, which is how dbus-next leaks match rules).
 * - `stats.calls` counts every method call we send (not dbus-next's own `Hello`), so idle traffic can be
 *   measured.
 *
 * We use dbus-next's low-level API only (`send` + the `message` event). Replies are matched to calls
 * here, not by dbus-next, because dbus-next never fails a pending call when the socket closes.
 */
import dbus from 'dbus-next';
import type { Message as DbusMessage, MessageBus } from 'dbus-next';
import { FlotillaError } from '../lib/errors.js';
import { Backoff } from '../lib/backoff.js';

export const DEFAULT_SYSTEM_BUS_ADDRESS = 'unix:path=/run/dbus/system_bus_socket';

const { Message, MessageType } = dbus;

/**
 * The address to use: explicit option (a D-Bus address, or a plain socket path as a config file may
 * give it), else `$DBUS_SYSTEM_BUS_ADDRESS`, else the standard socket.
 */
export function systemBusAddress(address?: string, env: NodeJS.ProcessEnv = process.env): string {
  if (address !== undefined && address !== '')
    return address.startsWith('/') ? `unix:path=${address}` : address;
  const fromEnv = env.DBUS_SYSTEM_BUS_ADDRESS;
  if (fromEnv !== undefined && fromEnv !== '') return fromEnv;
  return DEFAULT_SYSTEM_BUS_ADDRESS;
}

export interface BusCall {
  destination: string;
  path: string;
  interface: string;
  member: string;
  signature?: string;
  body?: unknown[];
  /** Overall deadline for this call, including waiting for a reconnect. */
  timeoutMs?: number;
  /** Safe to send twice: retried once on the next connection when the connection drops under it. */
  idempotent?: boolean;
}

export interface BusSignal {
  sender: string;
  path: string;
  interface: string;
  member: string;
  body: unknown[];
  /** Position in the connection's message stream (compare with `callSeq` results). */
  seq: number;
}

export interface SetupContext {
  /** True for every connection after the first. */
  reconnect: boolean;
  /** Calls on the new connection before it is marked ready. */
  call(c: BusCall): Promise<unknown[]>;
}

export interface DbusConnectionOptions {
  address?: string;
  env?: NodeJS.ProcessEnv;
  /** Default deadline for `call()`; D-Bus's own default is 25 s. */
  callTimeoutMs?: number;
  /** Calls awaiting a reply at once; more wait in a FIFO queue. Default 64 (dbus-daemon allows 128). */
  maxInFlight?: number;
  /** First reconnect delay; doubles up to `reconnectMaxMs`. */
  reconnectMinMs?: number;
  reconnectMaxMs?: number;
  /** Opens the underlying dbus-next connection; tests inject a fake. */
  factory?: (address: string) => MessageBus;
  log?: (level: 'debug' | 'info' | 'warn', msg: string, fields?: Record<string, unknown>) => void;
}

interface Pending {
  resolve: (r: { body: unknown[]; seq: number }) => void;
  reject: (err: unknown) => void;
  timer: NodeJS.Timeout;
  member: string;
}

interface Queued {
  gen: number;
  c: BusCall;
  timeoutMs: number;
  resolve: (r: { body: unknown[]; seq: number }) => void;
  reject: (err: unknown) => void;
}

type State = 'idle' | 'connecting' | 'ready' | 'closed';

interface StreamLike {
  on(event: 'close', fn: () => void): unknown;
  destroy(): void;
}

export class DbusConnection {
  readonly address: string;
  readonly stats = { calls: 0, signals: 0, connects: 0, byMember: new Map<string, number>() };

  private readonly callTimeoutMs: number;
  private readonly reconnectMinMs: number;
  private readonly reconnectMaxMs: number;
  private readonly factory: (address: string) => MessageBus;
  private readonly log: NonNullable<DbusConnectionOptions['log']>;

  private state: State = 'idle';
  private gen = 0;
  private bus: MessageBus | undefined;
  private stream: StreamLike | undefined;
  private readonly pending = new Map<number, Pending>();
  private readonly queued: Queued[] = [];
  private readonly maxInFlight: number;
  private readonly matches = new Set<string>();
  private readonly setups: ((ctx: SetupContext) => Promise<void>)[] = [];
  private readonly signalListeners = new Set<(s: BusSignal) => void>();
  private readonly stateListeners = new Set<(up: boolean, err?: unknown) => void>();
  private readyWaiters: { resolve: () => void; reject: (e: unknown) => void }[] = [];
  private readonly backoff: Backoff;
  private retryTimer: NodeJS.Timeout | undefined;
  private lastError: unknown;
  private msgSeq = 0;

  constructor(opts: DbusConnectionOptions = {}) {
    this.address = systemBusAddress(opts.address, opts.env);
    this.callTimeoutMs = opts.callTimeoutMs ?? 25_000;
    this.maxInFlight = opts.maxInFlight ?? 64;
    this.reconnectMinMs = opts.reconnectMinMs ?? 50;
    this.reconnectMaxMs = opts.reconnectMaxMs ?? 2_000;
    this.backoff = new Backoff(this.reconnectMinMs, this.reconnectMaxMs);
    this.factory = opts.factory ?? ((busAddress) => dbus.sessionBus({ busAddress }));
    this.log = opts.log ?? (() => undefined);
  }

  get isReady(): boolean {
    return this.state === 'ready';
  }

  /** Registers a hook run on every (re)connect before calls are let through. Register before `start()`. */
  onSetup(fn: (ctx: SetupContext) => Promise<void>): void {
    this.setups.push(fn);
  }

  onSignal(fn: (s: BusSignal) => void): () => void {
    this.signalListeners.add(fn);
    return () => this.signalListeners.delete(fn);
  }

  /** `up=true` when a connection became ready, `up=false` when it was lost. */
  onState(fn: (up: boolean, err?: unknown) => void): () => void {
    this.stateListeners.add(fn);
    return () => this.stateListeners.delete(fn);
  }

  /** Starts connecting (idempotent). */
  start(): void {
    if (this.state !== 'idle') return;
    this.connect();
  }

  /** Adds a match rule now (if connected) and after every reconnect. */
  async addMatch(rule: string): Promise<void> {
    if (this.matches.has(rule)) return;
    this.matches.add(rule);
    if (this.state === 'ready') await this.call(addMatchCall(rule));
  }

  /** Resolves when ready; rejects with E_SYSTEMD_UNAVAILABLE after `timeoutMs` or on close. */
  ready(timeoutMs = this.callTimeoutMs): Promise<void> {
    if (this.state === 'ready') return Promise.resolve();
    if (this.state === 'closed') return Promise.reject(closedError());
    return new Promise<void>((resolve, reject) => {
      const waiter = {
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
        reject: (e: unknown) => {
          clearTimeout(timer);
          reject(e instanceof Error ? e : new Error(String(e)));
        },
      };
      const timer = setTimeout(() => {
        this.readyWaiters = this.readyWaiters.filter((w) => w !== waiter);
        reject(
          new FlotillaError(
            'E_SYSTEMD_UNAVAILABLE',
            `system bus ${this.address} not reachable within ${timeoutMs} ms`,
            {
              address: this.address,
              cause: describe(this.lastError),
            },
          ),
        );
      }, timeoutMs);
      this.readyWaiters.push(waiter);
    });
  }

  async call(c: BusCall): Promise<unknown[]> {
    return (await this.callSeq(c)).body;
  }

  /**
   * Like `call`, and also returns the reply's position in the message stream: a signal with a higher
   * `seq` was sent after the reply (so it is newer than the state the reply describes).
   */
  async callSeq(c: BusCall): Promise<{ body: unknown[]; seq: number }> {
    const timeout = c.timeoutMs ?? this.callTimeoutMs;
    const deadline = Date.now() + timeout;
    for (let attempt = 0; ; attempt++) {
      if (this.state !== 'ready') await this.ready(Math.max(1, deadline - Date.now()));
      try {
        return await this.send(this.gen, c, Math.max(1, deadline - Date.now()));
      } catch (err) {
        // A read (or another call that is safe to repeat) lost with its connection is sent again,
        // once, on the next connection.
        const lost =
          err instanceof FlotillaError && err.code === 'E_SYSTEMD_UNAVAILABLE' && err.details.lost === true;
        if (!(c.idempotent && lost && attempt === 0 && Date.now() < deadline)) throw err;
      }
    }
  }

  /** Disconnects for good; pending and future calls fail with E_SYSTEMD_UNAVAILABLE. */
  close(): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    clearTimeout(this.retryTimer);
    this.failPending(closedError());
    for (const w of this.readyWaiters.splice(0)) w.reject(closedError());
    this.teardown();
  }

  private connect(): void {
    const gen = ++this.gen;
    this.state = 'connecting';
    let bus: MessageBus;
    try {
      bus = this.factory(this.address);
    } catch (err) {
      this.lost(gen, err);
      return;
    }
    this.bus = bus;
    const stream = (bus as unknown as { _connection?: { stream?: StreamLike } })._connection?.stream;
    this.stream = stream;
    bus.on('error', (err: unknown) => this.lost(gen, err));
    stream?.on('close', () => this.lost(gen, new Error('bus connection closed')));
    bus.on('message', (m: DbusMessage) => this.dispatch(gen, m));
    bus.on('connect', () => {
      void this.runSetup(gen);
    });
  }

  private async runSetup(gen: number): Promise<void> {
    const reconnect = this.stats.connects > 0;
    const ctx: SetupContext = {
      reconnect,
      call: async (c) => (await this.send(gen, c, c.timeoutMs ?? this.callTimeoutMs)).body,
    };
    try {
      for (const rule of this.matches) await ctx.call(addMatchCall(rule));
      for (const fn of this.setups) await fn(ctx);
    } catch (err) {
      this.log('warn', 'bus setup failed; reconnecting', { error: describe(err) });
      this.lost(gen, err);
      return;
    }
    if (gen !== this.gen || this.state !== 'connecting') return;
    this.state = 'ready';
    this.stats.connects++;
    this.backoff.reset();
    this.log(reconnect ? 'info' : 'debug', reconnect ? 'system bus reconnected' : 'system bus connected', {
      address: this.address,
    });
    for (const w of this.readyWaiters.splice(0)) w.resolve();
    for (const fn of this.stateListeners) safe(() => fn(true));
  }

  private lost(gen: number, err: unknown): void {
    if (gen !== this.gen || this.state === 'closed') return;
    this.gen++; // invalidates the old connection's callbacks
    this.lastError = err;
    const wasReady = this.state === 'ready';
    this.teardown();
    this.failPending(
      new FlotillaError('E_SYSTEMD_UNAVAILABLE', `system bus connection lost: ${describe(err)}`, {
        address: this.address,
        lost: true,
      }),
    );
    this.state = 'connecting';
    if (wasReady) {
      this.log('warn', 'system bus connection lost; reconnecting', {
        address: this.address,
        error: describe(err),
      });
      for (const fn of this.stateListeners) safe(() => fn(false, err));
    }
    const delay = this.backoff.next();
    this.retryTimer = setTimeout(() => {
      if (this.state !== 'closed') this.connect();
    }, delay);
  }

  private teardown(): void {
    const bus = this.bus;
    const stream = this.stream;
    this.bus = undefined;
    this.stream = undefined;
    if (bus) {
      bus.removeAllListeners('message');
      bus.removeAllListeners('connect');
      // Keep an error listener: late socket errors must not become uncaught exceptions.
      bus.removeAllListeners('error');
      bus.on('error', () => undefined);
    }
    try {
      stream?.destroy();
    } catch {
      /* already gone */
    }
  }

  private failPending(err: unknown): void {
    for (const [serial, p] of this.pending) {
      this.pending.delete(serial);
      clearTimeout(p.timer);
      p.reject(err);
    }
    for (const q of this.queued.splice(0)) q.reject(err);
  }

  /**
   * Sends now, or queues when `maxInFlight` calls already wait for replies: dbus-daemon refuses more
   * than max_replies_per_connection (128 on the system bus) with LimitsExceeded.
   */
  private send(gen: number, c: BusCall, timeoutMs: number): Promise<{ body: unknown[]; seq: number }> {
    return new Promise<{ body: unknown[]; seq: number }>((resolve, reject) => {
      const item: Queued = { gen, c, timeoutMs, resolve, reject };
      if (this.pending.size >= this.maxInFlight) this.queued.push(item);
      else this.transmit(item);
    });
  }

  private transmit({ gen, c, timeoutMs, resolve, reject }: Queued): void {
    const bus = this.bus;
    if (gen !== this.gen || !bus) {
      reject(
        new FlotillaError('E_SYSTEMD_UNAVAILABLE', 'system bus connection lost', {
          address: this.address,
          lost: true,
        }),
      );
      return;
    }
    const msg = new Message({
      destination: c.destination,
      path: c.path,
      interface: c.interface,
      member: c.member,
      signature: c.signature ?? '',
      body: c.body ?? [],
    });
    try {
      bus.send(msg);
    } catch (err) {
      reject(
        new FlotillaError(
          'E_SYSTEMD_UNAVAILABLE',
          `cannot send ${c.member}: ${describe(err)}`,
          { lost: true },
          { cause: err },
        ),
      );
      return;
    }
    this.stats.calls++;
    this.stats.byMember.set(c.member, (this.stats.byMember.get(c.member) ?? 0) + 1);
    const serial = msg.serial as number;
    const timer = setTimeout(() => {
      this.pending.delete(serial);
      this.drain();
      reject(
        new FlotillaError('E_SYSTEMD_UNAVAILABLE', `${c.member} got no reply within ${timeoutMs} ms`, {
          member: c.member,
          path: c.path,
        }),
      );
    }, timeoutMs);
    this.pending.set(serial, { resolve, reject, timer, member: c.member });
  }

  private drain(): void {
    while (this.queued.length > 0 && this.pending.size < this.maxInFlight)
      this.transmit(this.queued.shift()!);
  }

  private dispatch(gen: number, m: DbusMessage): void {
    if (gen !== this.gen) return;
    const seq = ++this.msgSeq;
    try {
      if (m.type === MessageType.METHOD_RETURN || m.type === MessageType.ERROR) {
        const serial = Number(m.replySerial);
        const p = this.pending.get(serial);
        if (!p) return;
        this.pending.delete(serial);
        clearTimeout(p.timer);
        this.drain();
        if (m.type === MessageType.ERROR) {
          const text = typeof m.body[0] === 'string' ? m.body[0] : '';
          p.reject(
            new FlotillaError('E_SYSTEMD_CALL', `${p.member}: ${m.errorName}${text ? `: ${text}` : ''}`, {
              name: m.errorName,
              member: p.member,
              text,
            }),
          );
        } else {
          p.resolve({ body: m.body, seq });
        }
      } else if (m.type === MessageType.SIGNAL) {
        this.stats.signals++;
        const s: BusSignal = {
          sender: m.sender,
          path: m.path,
          interface: m.interface,
          member: m.member,
          body: m.body,
          seq,
        };
        for (const fn of this.signalListeners) safe(() => fn(s));
      }
    } catch (err) {
      this.log('warn', 'error while dispatching a bus message', { error: describe(err) });
    }
  }
}

/** The D-Bus error name of an E_SYSTEMD_CALL error, else undefined. */
export function dbusErrorName(err: unknown): string | undefined {
  if (err instanceof FlotillaError && err.code === 'E_SYSTEMD_CALL') {
    const n = err.details.name;
    return typeof n === 'string' ? n : undefined;
  }
  return undefined;
}

function addMatchCall(rule: string): BusCall {
  return {
    destination: 'org.freedesktop.DBus',
    path: '/org/freedesktop/DBus',
    interface: 'org.freedesktop.DBus',
    member: 'AddMatch',
    signature: 's',
    body: [rule],
  };
}

function closedError(): FlotillaError {
  return new FlotillaError('E_CLOSED', 'the systemd bus connection was closed');
}

function safe(fn: () => void): void {
  try {
    fn();
  } catch {
    /* a listener's bug must not break the connection */
  }
}

export function describe(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}
