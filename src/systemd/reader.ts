/**
 * Reading systemd's view of units: object paths (from LoadUnit/ListUnitsByNames, cached by name;
 * never computed), full property sets, and single-call listings.
 */
import { dbusErrorName, type DbusConnection } from './bus.js';
import { SD, UNIT, managerCall, propsCall } from './calls.js';
import type { UnitSummary } from './manager.js';
import { int, str } from './properties.js';

/** Type-specific interface of each unit type that has one with a `Result` (suffix → interface). */
const TYPE_INTERFACES: Readonly<Record<string, string>> = {
  service: 'Service',
  socket: 'Socket',
  mount: 'Mount',
  swap: 'Swap',
  timer: 'Timer',
  path: 'Path',
  automount: 'Automount',
  scope: 'Scope',
};
const SERVICE_PROPS = [
  'Result',
  'MainPID',
  'ExecMainCode',
  'ExecMainStatus',
  'ExecMainStartTimestamp',
  'ExecMainExitTimestamp',
  'NRestarts',
];

export class UnitReader {
  private readonly paths = new Map<string, string>();

  constructor(private readonly conn: DbusConnection) {}

  async pathFor(name: string): Promise<string> {
    const cached = this.paths.get(name);
    if (cached) return cached;
    const [p] = await this.conn.call(managerCall('LoadUnit', 's', [name]));
    const path = String(p);
    this.paths.set(name, path);
    return path;
  }

  /**
   * One GetAll with an empty interface name: systemd (sd-bus) then returns the properties of every
   * interface of the object (Unit + Service/Socket/…) in one reply.
   *
   * That reply fails as a whole (InvalidArgs) when any one property cannot be marshalled, e.g. an
   * ExecStart= whose arguments are not valid UTF-8 after unescaping. Then we fall back to GetAll on the
   * Unit interface plus one Get per type-specific property we use, each allowed to fail alone.
   */
  async fetchProps(name: string): Promise<{ props: Record<string, unknown>; seq: number }> {
    const path = await this.pathFor(name);
    try {
      const { body, seq } = await this.conn.callSeq(propsCall('GetAll', path, 's', ['']));
      return { props: (body[0] ?? {}) as Record<string, unknown>, seq };
    } catch (err) {
      if (dbusErrorName(err) !== 'org.freedesktop.DBus.Error.InvalidArgs') throw err;
    }
    const { body, seq } = await this.conn.callSeq(propsCall('GetAll', path, 's', [UNIT]));
    const props = { ...(body[0] as Record<string, unknown>) };
    const type = TYPE_INTERFACES[name.slice(name.lastIndexOf('.') + 1)];
    if (type) {
      const names = type === 'Service' ? SERVICE_PROPS : ['Result'];
      await Promise.all(
        names.map(async (p) => {
          try {
            const [v] = await this.conn.call(propsCall('Get', path, 'ss', [`${SD}.${type}`, p]));
            props[p] = v;
          } catch {
            /* this one property stays unknown */
          }
        }),
      );
    }
    return { props, seq };
  }

  async listByNames(names: readonly string[]): Promise<UnitSummary[]> {
    if (names.length === 0) return [];
    const [rows] = await this.conn.call(managerCall('ListUnitsByNames', 'as', [[...names]]));
    return this.toSummaries(rows);
  }

  async listAll(): Promise<UnitSummary[]> {
    const [rows] = await this.conn.call(managerCall('ListUnits', '', []));
    return this.toSummaries(rows);
  }

  private toSummaries(rows: unknown): UnitSummary[] {
    if (!Array.isArray(rows)) return [];
    return rows.map((r: unknown[]) => {
      const s: UnitSummary = {
        name: str(r[0]) ?? '',
        description: str(r[1]) ?? '',
        loadState: str(r[2]) ?? '',
        activeState: (str(r[3]) ?? 'inactive') as UnitSummary['activeState'],
        subState: str(r[4]) ?? '',
        following: str(r[5]) ?? '',
        path: str(r[6]) ?? '',
        jobId: int(r[7]) ?? 0,
        jobType: str(r[8]) ?? '',
      };
      if (s.path) this.paths.set(s.name, s.path);
      return s;
    });
  }
}
