// Small display helpers shared by the pages.
export const machineLabel = (m) =>
  m.metadata?.name ? `${m.metadata.name} (${m.id.slice(0, 8)})` : m.id.slice(0, 12);

export function machineOf(s, id) {
  return s.machines.find((x) => x.id === id);
}

/** Units table rows; each row object is kept while its unit, state and machine list are the same. */
const cache = new WeakMap();
export function unitRow(s, u) {
  const st = s.states.get(u.name);
  const hit = cache.get(u);
  if (hit && hit.st === st && hit.machines === s.machines) return hit.row;
  const m = machineOf(s, st?.machineID ?? u.machineID);
  const row = {
    name: u.name,
    machine: m
      ? `${m.metadata?.name ?? m.id.slice(0, 8)}/${m.primaryIP}`
      : u.machineID
        ? u.machineID.slice(0, 8)
        : '-',
    desired: u.desiredState,
    current: u.currentState ?? '-',
    active: st?.systemdActiveState ? `${st.systemdActiveState}/${st.systemdSubState}` : '-',
  };
  cache.set(u, { st, machines: s.machines, row });
  return row;
}
