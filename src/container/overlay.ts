/**
 * The status overlay of a container unit: what systemd reports for its generated service is not the
 * whole story (a pull before the start, a failure the runner or the agent recorded, the container
 * itself). Pure functions: what to show, from what ContainerUnits knows.
 */
import type { ContainerStateInfo, UnitStateRecord } from '../registry/types.js';
import type { RunnerStatus } from './runner.js';
import type { ContainerSpec } from './spec.js';
import type { Track } from './track.js';

export interface OverlayFacts {
  spec: ContainerSpec;
  track: Track | undefined;
  /** The runner's status file (read only when needed). */
  status: () => RunnerStatus | undefined;
  dockerUp: boolean;
  lastDockerError: string;
  container: ContainerStateInfo | undefined;
}

/** A unit's published state with the container side added (a new record). */
export function overlayRecord(rec: Readonly<UnitStateRecord>, f: OverlayFacts): UnitStateRecord {
  const out: UnitStateRecord = { ...rec };
  const t = f.track;
  if (t?.launched && t.pulling) {
    out.activeState = 'activating';
    out.subState = 'pulling';
    out.pull = { ...t.pulling.progress };
  } else if (t?.launched && t.failure) {
    out.activeState = 'failed';
    out.subState = 'failed';
    out.reason = t.failure.reason;
  } else if (out.activeState === 'failed') {
    const st = f.status();
    if (st?.reason) out.reason = st.reason;
    else if (!f.dockerUp) out.reason = `docker unavailable: ${f.lastDockerError}`;
  }
  out.container = f.container ?? {
    name: f.spec.name,
    image: f.spec.image,
    state: f.dockerUp ? 'absent' : 'unknown',
    health: 'none',
  };
  return out;
}
