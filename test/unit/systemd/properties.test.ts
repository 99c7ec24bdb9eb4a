import dbus from 'dbus-next';
import { describe, expect, it } from 'vitest';
import {
  UINT64_MAX,
  applyProperties,
  emptyState,
  hex,
  jsonReplacer,
  msToIso,
  plain,
  stateToJSON,
  u64,
  unitNameFromPath,
  usToMs,
} from '../../../src/systemd/properties.js';

const V = (sig: string, v: unknown) => new dbus.Variant(sig, v);

describe('64-bit values', () => {
  it('converts µs timestamps to ms, keeping µs as a fraction', () => {
    expect(usToMs(1_700_000_000_123_456n)).toBe(1_700_000_000_123.456);
    expect(usToMs(V('t', 1_700_000_000_000_000n))).toBe(1_700_000_000_000);
    expect(usToMs(0n)).toBeNull();
    expect(usToMs(UINT64_MAX)).toBeNull();
    expect(usToMs('x')).toBeNull();
    expect(msToIso(usToMs(1_700_000_000_123_456n))).toBe('2023-11-14T22:13:20.123Z');
  });

  it('maps UINT64_MAX (infinity) to null and keeps exact values', () => {
    expect(u64(UINT64_MAX)).toBeNull();
    expect(u64(V('t', 512n))).toBe(512);
    expect(u64(2n ** 53n - 1n)).toBe(Number.MAX_SAFE_INTEGER);
  });

  it('plain() strips Variants and never leaves a bigint behind', () => {
    const v = plain({ a: V('t', 5n), b: [V('x', -3n), 2n ** 64n - 1n], c: Buffer.from([1, 2]) });
    expect(v).toEqual({ a: 5, b: [-3, '18446744073709551615'], c: [1, 2] });
    expect(() => JSON.stringify(v)).not.toThrow();
  });

  it('jsonReplacer makes JSON.stringify safe on raw bigints', () => {
    expect(() => JSON.stringify({ x: 1n })).toThrow();
    expect(JSON.stringify({ x: 1n, y: 2n ** 60n }, jsonReplacer)).toBe('{"x":1,"y":"1152921504606846976"}');
  });

  it('hex() renders InvocationID bytes', () => {
    expect(hex(V('ay', Buffer.from([0xde, 0xad, 0x01])))).toBe('dead01');
    expect(hex(V('ay', []))).toBeNull();
  });
});

describe('applyProperties', () => {
  const getAll = {
    Id: V('s', 'web.service'),
    LoadState: V('s', 'loaded'),
    ActiveState: V('s', 'active'),
    SubState: V('s', 'running'),
    MainPID: V('u', 4242),
    ExecMainStatus: V('i', 0),
    ExecMainCode: V('i', 0),
    Result: V('s', 'success'),
    ActiveEnterTimestamp: V('t', 1_700_000_000_000_000n),
    InactiveExitTimestamp: V('t', 0n),
    NRestarts: V('u', 2),
    InvocationID: V('ay', Buffer.from([1, 2, 3])),
    SomethingElse: V('t', 99n),
  };

  it('builds a JSON-safe UnitState from a GetAll reply', () => {
    const { state, changed } = applyProperties(emptyState('web.service'), getAll);
    expect(state).toMatchObject({
      name: 'web.service',
      loadState: 'loaded',
      activeState: 'active',
      subState: 'running',
      mainPID: 4242,
      execMainStatus: 0,
      result: 'success',
      activeEnterTimestamp: 1_700_000_000_000,
      inactiveExitTimestamp: null,
      nRestarts: 2,
      invocationId: '010203',
    });
    expect(changed).toContain('activeState');
    expect(changed).not.toContain('name');
    const json = JSON.stringify(state);
    expect(JSON.parse(json)).toEqual(state);
    expect(stateToJSON(state).activeEnterTimestamp).toBe('2023-11-14T22:13:20.000Z');
  });

  it('reports only fields whose value changed', () => {
    const { state } = applyProperties(emptyState('web.service'), getAll);
    const r = applyProperties(state, { ActiveState: V('s', 'active'), SubState: V('s', 'exited') });
    expect(r.changed).toEqual(['subState']);
    expect(r.state.subState).toBe('exited');
    expect(state.subState).toBe('running'); // not mutated
  });

  it('keeps the requested name over an alias Id', () => {
    const { state } = applyProperties(emptyState('alias.service'), { Id: V('s', 'real.service') });
    expect(state.name).toBe('alias.service');
  });
});

describe('unitNameFromPath', () => {
  it('decodes systemd bus labels', () => {
    expect(unitNameFromPath('/org/freedesktop/systemd1/unit/ssh_2eservice')).toBe('ssh.service');
    expect(unitNameFromPath('/org/freedesktop/systemd1/unit/a_40b_2eservice')).toBe('a@b.service');
    expect(unitNameFromPath('/org/freedesktop/systemd1/unit/_2d_2eslice')).toBe('-.slice');
    expect(unitNameFromPath('/org/freedesktop/systemd1/unit/x_5cxe2_5cx98_5cx83_2eservice')).toBe(
      'x\\xe2\\x98\\x83.service',
    );
  });

  it('rejects what is not a unit object', () => {
    expect(unitNameFromPath('/org/freedesktop/systemd1/job/12')).toBeUndefined();
    expect(unitNameFromPath('/org/freedesktop/systemd1/unit/a/b')).toBeUndefined();
    expect(unitNameFromPath('/org/freedesktop/systemd1/unit/bad_zz')).toBeUndefined();
  });
});

describe('systemBusAddress', () => {
  it('takes the option (address or socket path), then $DBUS_SYSTEM_BUS_ADDRESS, then the standard socket', async () => {
    const { systemBusAddress } = await import('../../../src/systemd/bus.js');
    expect(systemBusAddress('unix:path=/x/bus', { DBUS_SYSTEM_BUS_ADDRESS: 'unix:path=/env' })).toBe(
      'unix:path=/x/bus',
    );
    expect(systemBusAddress('/run/m1/system_bus_socket', {})).toBe('unix:path=/run/m1/system_bus_socket');
    expect(systemBusAddress(undefined, { DBUS_SYSTEM_BUS_ADDRESS: 'unix:path=/env' })).toBe('unix:path=/env');
    expect(systemBusAddress('', {})).toBe('unix:path=/run/dbus/system_bus_socket');
  });
});
