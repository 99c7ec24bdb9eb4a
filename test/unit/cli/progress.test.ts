/** The pull progress line a blocking `flotilla start` draws on a terminal. */
import { describe, expect, it } from 'vitest';
import { progressLine } from '../../../src/cli/commands/container.js';

describe('progressLine', () => {
  it('draws a bar with sizes and layers', () => {
    expect(
      progressLine(
        'web.service',
        { image: 'app:1', current: 512 * 1024, total: 2 * 1024 * 1024, layers: 3, layersDone: 1 },
        8,
      ),
    ).toBe('Pulling app:1 for web.service [=>      ] 512.0 KiB/2.0 MiB 1/3 layers');
    expect(
      progressLine('w.service', { image: 'a', current: 10, total: 10, layers: 1, layersDone: 1 }, 4),
    ).toBe('Pulling a for w.service [===>] 10 B/10 B 1/1 layers');
  });
  it('says nothing about sizes it does not know yet', () => {
    expect(progressLine('w.service', { image: 'a', current: 0, total: 0, layers: 0, layersDone: 0 }, 4)).toBe(
      'Pulling a for w.service [    ]',
    );
  });
});
