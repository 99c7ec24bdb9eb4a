import { describe, expect, it } from 'vitest';
import { resourceProperties, transientProperties } from '../../../src/systemd/transient.js';

describe('transientProperties', () => {
  it('builds ExecStart and cgroup properties with exact 64-bit values', () => {
    const props = Object.fromEntries(
      transientProperties({
        name: 'flotilla-write.service',
        command: ['/usr/bin/dd', 'if=/dev/zero', 'of=/tmp/x'],
        cpuWeight: 20,
        ioWeight: 10,
        ioReadBandwidthMax: [{ device: '/dev/vda', bytesPerSecond: 1_000_000 }],
        ioWriteBandwidthMax: [{ device: '/dev/vda', bytesPerSecond: 5_000_000 }],
        memoryMax: 64 * 1024 * 1024,
        nice: 10,
        environment: { A: 'b c' },
      }),
    );
    expect(props.ExecStart).toEqual({
      signature: 'a(sasb)',
      value: [['/usr/bin/dd', ['/usr/bin/dd', 'if=/dev/zero', 'of=/tmp/x'], false]],
    });
    expect(props.CPUWeight).toEqual({ signature: 't', value: 20n });
    expect(props.IOWeight).toEqual({ signature: 't', value: 10n });
    expect(props.IOReadBandwidthMax).toEqual({ signature: 'a(st)', value: [['/dev/vda', 1_000_000n]] });
    expect(props.IOWriteBandwidthMax).toEqual({ signature: 'a(st)', value: [['/dev/vda', 5_000_000n]] });
    expect(props.MemoryMax).toEqual({ signature: 't', value: 67_108_864n });
    expect(props.Nice).toEqual({ signature: 'i', value: 10 });
    expect(props.Environment).toEqual({ signature: 'as', value: ['A=b c'] });
    expect(props.CollectMode).toEqual({ signature: 's', value: 'inactive-or-failed' });
  });

  it('refuses out-of-range values before anything is sent', () => {
    const base = { name: 'flotilla-x.service', command: ['/bin/true'] };
    expect(() => transientProperties({ ...base, command: ['true'] })).toThrow(/absolute/);
    expect(() => transientProperties({ ...base, cpuWeight: 0 })).toThrow(/CPUWeight/);
    expect(() => transientProperties({ ...base, ioWeight: 10_001 })).toThrow(/IOWeight/);
    expect(() => transientProperties({ ...base, nice: 20 })).toThrow(/Nice/);
    expect(() => transientProperties({ ...base, memoryMax: -1 })).toThrow(/MemoryMax/);
    expect(() =>
      transientProperties({ ...base, ioWriteBandwidthMax: [{ device: 'vda', bytesPerSecond: 1 }] }),
    ).toThrow(/absolute/);
    expect(() => transientProperties({ ...base, environment: { 'A B': 'x' } })).toThrow(/environment/);
  });

  it('resourceProperties maps infinity and leaves Nice out', () => {
    expect(resourceProperties({ memoryMax: 'infinity', nice: 5 })).toEqual([
      ['MemoryMax', { signature: 't', value: 0xffff_ffff_ffff_ffffn }],
    ]);
  });
});
