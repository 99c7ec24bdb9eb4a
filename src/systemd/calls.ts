/**
 * The systemd D-Bus names we use and builders for the calls, so that every call says whether it is
 * safe to repeat after a dropped connection (bus.ts retries those once).
 */
import dbus from 'dbus-next';
import type { BusCall } from './bus.js';
import type { Prop } from './transient.js';

export const SD = 'org.freedesktop.systemd1';
export const SD_PATH = '/org/freedesktop/systemd1';
export const MANAGER = 'org.freedesktop.systemd1.Manager';
export const UNIT = 'org.freedesktop.systemd1.Unit';
export const PROPS = 'org.freedesktop.DBus.Properties';
export const UNIT_PATH_PREFIX = '/org/freedesktop/systemd1/unit/';

export function toVariantProp([name, v]: Prop): [string, InstanceType<typeof dbus.Variant>] {
  return [name, new dbus.Variant(v.signature, v.value)];
}

/** Manager methods that are safe to send again if the connection dropped under them. */
const IDEMPOTENT = new Set([
  'LoadUnit',
  'GetUnit',
  'ListUnits',
  'ListUnitsByNames',
  'GetUnitFileState',
  'Subscribe',
  'Reload',
  'LinkUnitFiles',
  'EnableUnitFiles',
  'DisableUnitFiles',
  'ResetFailedUnit',
  'SetUnitProperties',
]);

export function managerCall(member: string, signature: string, body: unknown[]): BusCall {
  return {
    destination: SD,
    path: SD_PATH,
    interface: MANAGER,
    member,
    signature,
    body,
    idempotent: IDEMPOTENT.has(member),
  };
}

export function propsCall(member: string, path: string, signature: string, body: unknown[]): BusCall {
  return { destination: SD, path, interface: PROPS, member, signature, body, idempotent: true };
}

export function dbusCall(member: string, signature: string, body: unknown[]) {
  return {
    destination: 'org.freedesktop.DBus',
    path: '/org/freedesktop/DBus',
    interface: 'org.freedesktop.DBus',
    member,
    signature,
    body,
  };
}
