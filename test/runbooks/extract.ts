/**
 * The runbook extractor: the commands of a docs/runbooks/*.md page, in order, as the test runs them.
 *
 * Every ```sh block of a page must be preceded (on the line just before it) by a marker:
 *
 *   <!-- runbook: on=m1 -->                 run on machine m1 (test/env/exec.sh m1 bash -c …)
 *   <!-- runbook: on=m2 expect=fail -->     this step is shown failing: it must exit non-zero
 *   <!-- runbook: on=m1 timeout=120 -->     seconds (default 60)
 *   <!-- runbook: on=m1,m2,m3 -->           the same commands on each machine, one after the other
 *                                           (one step per machine, in that order)
 *
 * A ```sh block without a marker is an error, so a page cannot show a command that no test runs.
 * Each block runs with `set -euo pipefail` in a clean login environment of the machine, so a step
 * that fails (or a check in it, e.g. `grep -q`) stops the page there.
 */
import { readFileSync } from 'node:fs';

export interface Step {
  /** 1-based line of the ```sh fence in the page. */
  line: number;
  on: string;
  expect: 'ok' | 'fail';
  timeoutS: number;
  script: string;
}

const MARKER = /^<!--\s*runbook:\s*(.*?)\s*-->\s*$/;

export function extractSteps(markdown: string, where = 'page'): Step[] {
  const lines = markdown.split('\n');
  const steps: Step[] = [];
  for (let i = 0; i < lines.length; i++) {
    const fence = /^```(\S*)\s*$/.exec(lines[i]!);
    if (!fence) continue;
    let end = i + 1;
    while (end < lines.length && !/^```\s*$/.test(lines[end]!)) end++;
    if (end >= lines.length) throw new Error(`${where}:${i + 1}: code block is not closed`);
    if (fence[1] === 'sh') {
      const m = i > 0 ? MARKER.exec(lines[i - 1]!) : null;
      if (!m)
        throw new Error(
          `${where}:${i + 1}: a \`\`\`sh block without a <!-- runbook: on=mK --> marker above it`,
        );
      const opts: Record<string, string> = {};
      for (const part of m[1]!.split(/\s+/).filter(Boolean)) {
        const kv = /^([a-z]+)=(\S+)$/.exec(part);
        if (!kv) throw new Error(`${where}:${i}: bad runbook marker option ${JSON.stringify(part)}`);
        opts[kv[1]!] = kv[2]!;
      }
      for (const k of Object.keys(opts))
        if (!['on', 'expect', 'timeout'].includes(k))
          throw new Error(`${where}:${i}: unknown runbook marker option ${k}`);
      if (!opts.on || !/^m[1-9](,m[1-9])*$/.test(opts.on))
        throw new Error(`${where}:${i}: runbook marker needs on=mK (or on=mK,mJ,...)`);
      if (opts.expect && opts.expect !== 'ok' && opts.expect !== 'fail')
        throw new Error(`${where}:${i}: expect= is ok or fail`);
      const timeoutS = opts.timeout ? Number(opts.timeout) : 60;
      if (!Number.isInteger(timeoutS) || timeoutS <= 0) throw new Error(`${where}:${i}: bad timeout=`);
      for (const on of opts.on.split(','))
        steps.push({
          line: i + 1,
          on,
          expect: (opts.expect as 'ok' | 'fail' | undefined) ?? 'ok',
          timeoutS,
          script: lines.slice(i + 1, end).join('\n'),
        });
    }
    i = end;
  }
  return steps;
}

export function extractFile(path: string): Step[] {
  return extractSteps(readFileSync(path, 'utf8'), path);
}
