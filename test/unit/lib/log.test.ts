/**
 * No credential in a log line: the scrubber on its own, and the real logger (JSON and journald
 * form) in a child process whose whole stderr is grepped for the planted password, with the
 * agent's own "registry: etcd …" line among them.
 */
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { journalLine, scrubCredentials } from '../../../src/lib/log.js';

const TSX = pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href;
const CHILD = join(import.meta.dirname, 'log-child.ts');

describe('scrubCredentials', () => {
  it.each([
    ['http://u:p4ss@h:2379', 'http://u:***@h:2379'],
    ['a https://root:s3cr%40t@10.0.0.1:2379/x b', 'a https://root:***@10.0.0.1:2379/x b'],
    ['{"e":"http://u:p@a:1,http://v:q@b:2"}', '{"e":"http://u:***@a:1,http://v:***@b:2"}'],
    ['escaped http:\\/\\/u:p@h', 'escaped http:\\/\\/u:***@h'],
    ['http://h:2379 user@example.com', 'http://h:2379 user@example.com'],
    ['ssh://core@m1', 'ssh://core@m1'],
  ])('%s', (input, want) => {
    expect(scrubCredentials(input)).toBe(want);
  });
  it('survives the journald rendering', () => {
    const line = journalLine(JSON.stringify({ level: 30, msg: 'x', endpoints: ['http://u:pw@h:1'] }));
    expect(scrubCredentials(line)).not.toContain('pw@');
  });
});

describe('the real logger never writes a URL password', () => {
  const PW = 'Planted-Pw-93xq';
  for (const mode of ['json', 'journald']) {
    it(
      mode,
      () => {
        const r = spawnSync(process.execPath, ['--import', TSX, CHILD, PW, mode], {
          encoding: 'utf8',
          timeout: 60_000,
        });
        expect(r.status, r.stderr).toBe(0);
        expect(r.stderr).toContain('registry: etcd http://root:***@127.0.0.1:9,http://root:***@127.0.0.2:9');
        expect(r.stderr).toContain('dialing https://root:***@10.0.0.1:2379/v3');
        expect(r.stderr).not.toContain(PW);
      },
      60_000,
    );
  }
});
