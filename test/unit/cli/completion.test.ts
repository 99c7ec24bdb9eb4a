/**
 * `completion bash|zsh`: the scripts are generated from the command tree and work in the real
 * shells. bash: the completion function runs with COMP_WORDS set as bash would, and unit names come
 * from the cluster by running the CLI (a wrapper that runs it from source) against the test API.
 * zsh: the script parses (`zsh -n`) and registers itself with compinit.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { COMMANDS } from '../../../src/cli/commands/index.js';
import { cliWrapper } from './child.js';
import { runCli, seed, startApi, type Api } from './harness.js';

let api: Api;
let dir: string;
let bashFile: string;
let zshFile: string;
let cli: string;

const hasZsh = spawnSync('zsh', ['-c', 'true']).status === 0;

beforeAll(async () => {
  api = await startApi();
  await seed(api);
  dir = mkdtempSync(join(tmpdir(), 'flotilla-completion-'));
  cli = cliWrapper(dir, 'flotilla');
  const bash = await runCli(['completion', 'bash']);
  const zsh = await runCli(['completion', 'zsh']);
  expect(bash.code).toBe(0);
  expect(zsh.code).toBe(0);
  bashFile = join(dir, 'flotilla.bash');
  zshFile = join(dir, '_flotilla');
  writeFileSync(bashFile, bash.out);
  writeFileSync(zshFile, zsh.out);
});
afterAll(async () => {
  await api.close();
  rmSync(dir, { recursive: true, force: true });
});

/**
 * What bash would offer for the command line `words` (the last word is being completed). Async:
 * the API under test lives in this process, so a blocking spawnSync would starve it.
 */
async function complete(words: string[]): Promise<string[]> {
  const script = [
    `source '${bashFile}'`,
    `COMP_WORDS=(${words.map((w) => `'${w}'`).join(' ')})`,
    `COMP_CWORD=${words.length - 1}`,
    '_flotilla',
    'printf "%s\\n" "${COMPREPLY[@]}"',
  ].join('\n');
  const child = spawn('bash', ['-c', script], { env: { ...process.env, FLEETCTL_ENDPOINT: api.endpoint } });
  let out = '';
  let err = '';
  child.stdout.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr.on('data', (c: Buffer) => (err += c.toString()));
  await new Promise((resolve) => child.on('close', resolve));
  expect(err).toBe('');
  return out.split('\n').filter(Boolean).sort();
}

describe('bash', () => {
  it('parses', () => {
    expect(spawnSync('bash', ['-n', bashFile]).status).toBe(0);
  });

  it('completes command names (hidden ones not offered) and resolves unique prefixes', async () => {
    expect(await complete([cli, 'list-'])).toEqual([
      'list-machines',
      'list-services',
      'list-unit-files',
      'list-units',
    ]);
    expect(await complete([cli, 'st'])).toEqual(['start', 'status', 'stop']);
    expect(await complete([cli, 've'])).toEqual(['version']);
    expect(await complete([cli, ''])).toEqual(
      COMMANDS.filter((c) => !c.hidden)
        .map((c) => c.name)
        .sort(),
    );
    expect(await complete([cli, 'list-mach', '--f'])).toEqual(['--fields=', '--full']);
  });

  it("completes each command's flags and the global flags", async () => {
    expect(await complete([cli, 'journal', '--l'])).toEqual(['--lines=']);
    expect(await complete([cli, 'journal', '--fo'])).toEqual(['--follow']);
    expect(await complete([cli, '--endpoint', 'x', 'ssh', '--forw'])).toEqual(['--forward-agent']);
    expect(await complete([cli, '--req'])).toEqual(['--request-timeout=']);
    expect(await complete([cli, 'list-units', '--output=j'])).toEqual(['json']);
    expect(await complete([cli, 'completion', ''])).toEqual(['bash', 'zsh']);
  });

  it('completes unit names from the cluster and machine IDs for ssh', async () => {
    expect(await complete([cli, 'stop', 'web@'])).toEqual(['web@.service', 'web@1.service', 'web@2.service']);
    expect(await complete([cli, 'ssh', 'a1'])).toEqual([
      'a1b2c3d4e5f60718293a4b5c6d7e8f90',
      'a1e5beef0718293a4b5c6d7e8f90a1b2',
    ]);
  }, 60_000);
});

describe.skipIf(!hasZsh)('zsh (skipped when zsh is not installed: apt-get install zsh)', () => {
  it('parses and registers for flotilla and fleetctl with compinit', () => {
    expect(spawnSync('zsh', ['-n', zshFile]).status).toBe(0);
    const r = spawnSync(
      'zsh',
      [
        '-fc',
        `autoload -Uz compinit && compinit -u -d '${dir}/zcompdump'; source '${zshFile}'; print -r -- $_comps[flotilla] $_comps[fleetctl]`,
      ],
      { encoding: 'utf8' },
    );
    expect(r.stderr).toBe('');
    expect(r.stdout.trim()).toBe('_flotilla _flotilla');
  });
});
