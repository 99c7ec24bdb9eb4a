/** The runbook extractor (test/runbooks/extract.ts): what it runs from a page, and what it refuses. */
import { readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { extractFile, extractSteps } from '../../runbooks/extract.js';

const page = [
  '# Title',
  '',
  '<!-- runbook: on=m1 -->',
  '```sh',
  'echo one',
  'echo two',
  '```',
  '',
  'Text, and an example that is not a command:',
  '```ini',
  '[Service]',
  '```',
  '<!-- runbook: on=m2 expect=fail timeout=90 -->',
  '```sh',
  'false',
  '```',
].join('\n');

describe('runbook extractor', () => {
  it('returns the marked sh blocks in order with their machine, expectation and timeout', () => {
    expect(extractSteps(page)).toEqual([
      { line: 4, on: 'm1', expect: 'ok', timeoutS: 60, script: 'echo one\necho two' },
      { line: 14, on: 'm2', expect: 'fail', timeoutS: 90, script: 'false' },
    ]);
  });

  it('runs a block marked on=m1,m2,m3 on each machine, in that order', () => {
    const steps = extractSteps('<!-- runbook: on=m2,m1,m3 timeout=5 -->\n```sh\nhostname\n```\n');
    expect(steps.map((s) => s.on)).toEqual(['m2', 'm1', 'm3']);
    expect(steps.every((s) => s.line === 2 && s.script === 'hostname' && s.timeoutS === 5)).toBe(true);
    expect(() => extractSteps('<!-- runbook: on=m1, -->\n```sh\nls\n```\n')).toThrow('needs on=mK');
  });

  it('refuses an unmarked sh block, a bad marker and an unclosed block, naming the line', () => {
    expect(() => extractSteps('x\n```sh\nls\n```\n', 'p.md')).toThrow(
      /^p\.md:2: a ```sh block without a <!-- runbook/,
    );
    expect(() => extractSteps('<!-- runbook: on=host -->\n```sh\nls\n```\n', 'p.md')).toThrow('needs on=mK');
    expect(() => extractSteps('<!-- runbook: on=m1 when=now -->\n```sh\nls\n```\n', 'p.md')).toThrow(
      'unknown runbook marker option when',
    );
    expect(() => extractSteps('<!-- runbook: on=m1 expect=maybe -->\n```sh\nls\n```\n')).toThrow(
      'expect= is ok or fail',
    );
    expect(() => extractSteps('<!-- runbook: on=m1 -->\n```sh\nls\n', 'p.md')).toThrow(
      'p.md:2: code block is not closed',
    );
  });

  it('reads every page of docs/runbooks without error', () => {
    const dir = fileURLToPath(new URL('../../../docs/runbooks/', import.meta.url));
    const pages = readdirSync(dir).filter((f) => f.endsWith('.md'));
    expect(pages.length).toBeGreaterThan(1);
    for (const p of pages) expect(() => extractFile(`${dir}${p}`)).not.toThrow();
  });
});
