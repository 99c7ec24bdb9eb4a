import { describe, expect, it } from 'vitest';
import { COMMANDS } from '../../../src/cli/commands/index.js';
import { findCommand } from '../../../src/cli/commands/index.js';
import { main, progName } from '../../../src/cli/main.js';
import { tabwrite } from '../../../src/cli/tabwriter.js';
import { VERSION } from '../../../src/version.js';

async function run(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await main(argv, { out: (s) => (out += s), err: (s) => (err += s) }, {});
  return { code, out, err };
}

describe('CLI entry', () => {
  it.each([['version'], ['--version'], ['-v'], ['vers']])('%s prints the version', async (...argv) => {
    const r = await run(...argv);
    expect(r).toEqual({ code: 0, out: `flotilla version ${VERSION}\n`, err: '' });
  });

  it.each([[], ['help'], ['--help'], ['-h']])('%s prints the help template', async (...argv) => {
    const r = await run(...argv);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^NAME:\n\tflotilla - /);
    for (const h of ['USAGE:', 'VERSION:', 'COMMANDS:', 'GLOBAL OPTIONS:']) expect(r.out).toContain(h);
    expect(r.out).toContain('\tlist-units\t');
  });

  it('help COMMAND shows that command', async () => {
    const r = await run('help', 'list-machines');
    expect(r.out).toMatch(/^NAME:\n\tlist-machines - /);
    expect(r.out).toContain('--fields=FIELDS');
  });

  it('an unknown command exits 64 with a usage hint (fleetctl exits 0)', async () => {
    const r = await run('bogus');
    expect(r).toEqual({
      code: 64,
      out: '',
      err: 'Error: unknown command "bogus" for "flotilla"\nRun \'flotilla help\' for usage.\n',
    });
  });

  it('a bad flag exits 64 with a usage hint, before or after the command', async () => {
    for (const argv of [
      ['--bogus', 'version'],
      ['version', '--bogus'],
      ['list-units', '-x'],
    ]) {
      const r = await run(...argv);
      expect(r.code).toBe(64);
      expect(r.err).toMatch(
        /^Error: unknown (flag: --bogus|shorthand flag: 'x' in -x)\nRun 'flotilla help' for usage\.\n$/,
      );
    }
  });

  it('every command in the registry loads, and its summary is the one the help list shows', async () => {
    for (const entry of COMMANDS) {
      const cmd = await entry.load();
      expect(cmd.name).toBe(entry.name);
      expect(cmd.summary).toBe(entry.summary);
      expect(Boolean(cmd.hidden)).toBe(Boolean(entry.hidden));
    }
  });

  it('has every fleetctl command, each reachable by a unique prefix', () => {
    const fleetctl = [
      'cat',
      'destroy',
      'help',
      'journal',
      'list-machines',
      'list-unit-files',
      'list-units',
      'load',
      'restart',
      'ssh',
      'start',
      'status',
      'stop',
      'submit',
      'unload',
      'verify',
      'version',
    ];
    for (const name of fleetctl) expect(findCommand(name)).toMatchObject({ name });
    for (const [prefix, name] of [
      ['ca', 'cat'],
      ['de', 'destroy'],
      ['he', 'help'],
      ['j', 'journal'],
      ['list-m', 'list-machines'],
      ['list-unit-', 'list-unit-files'],
      ['list-units', 'list-units'],
      ['lo', 'load'],
      ['r', 'restart'],
      ['ss', 'ssh'],
      ['star', 'start'],
      ['stat', 'status'],
      ['sto', 'stop'],
      ['su', 'submit'],
      ['un', 'unload'],
      ['vers', 'version'],
      ['com', 'completion'],
      ['con', 'container'],
    ]) {
      expect(findCommand(prefix!)).toMatchObject({ name });
    }
    // Hidden commands answer to their full name only.
    expect(findCommand('verif')).toBeUndefined();
    expect(findCommand('fd-f')).toBeUndefined();
    expect(findCommand('fd-forward')).toMatchObject({ name: 'fd-forward' });
  });

  it.each(COMMANDS.map((c) => [c.name]))('help %s and %s --help show the command', async (name) => {
    const a = await run('help', name);
    const b = await run(name, '--help');
    expect(a.code).toBe(0);
    expect(a.out).toMatch(new RegExp(`^NAME:\n\t${name} - `));
    expect(b).toEqual(a);
  });

  it('a flag value of the wrong kind is refused', async () => {
    const r = await run('list-units', '--no-legend=yes');
    expect(r.code).toBe(64);
  });

  it('resolves unique prefixes and refuses ambiguous ones', async () => {
    expect(findCommand('list-mach')).toMatchObject({ name: 'list-machines' });
    expect(findCommand('list-unit-')).toMatchObject({ name: 'list-unit-files' });
    expect(findCommand('list')).toEqual({
      ambiguous: ['list-machines', 'list-services', 'list-unit-files', 'list-units'],
    });
    const r = await run('list');
    expect(r.code).toBe(64);
    expect(r.err).toContain('ambiguous command "list"');
  });

  it('global flags come from FLEETCTL_* / FLOTILLA_* and an explicit flag wins', async () => {
    let out = '';
    const io = { out: (s: string) => (out += s), err: (s: string) => (out += s) };
    // list-machines against a socket that does not exist: the error names the endpoint we chose.
    const code = await main(['list-machines'], io, { FLEETCTL_ENDPOINT: 'unix:///nonexistent/a.sock' });
    expect(code).toBe(1);
    expect(out).toContain('/nonexistent/a.sock');
    out = '';
    await main(['--endpoint=unix:///nonexistent/b.sock', 'list-machines'], io, {
      FLOTILLA_ENDPOINT: 'unix:///nonexistent/a.sock',
    });
    expect(out).toContain('/nonexistent/b.sock');
  });

  it('takes global flag values as the next word, before or after the command', async () => {
    for (const argv of [
      ['--endpoint', 'unix:///nonexistent/c.sock', 'list-machines'],
      ['list-machines', '--endpoint', 'unix:///nonexistent/c.sock'],
    ]) {
      const r = await run(...argv);
      expect(r.code).toBe(1);
      expect(r.err).toBe(
        'Error retrieving list of active machines: unix:///nonexistent/c.sock: connect ENOENT /nonexistent/c.sock\n',
      );
    }
  });

  it('calls itself fleetctl when run as fleetctl', () => {
    expect(progName('/usr/local/bin/fleetctl')).toBe('fleetctl');
    expect(progName('/usr/local/bin/flotilla')).toBe('flotilla');
    expect(progName('/opt/flotilla/bin/flotilla.js')).toBe('flotilla');
  });

  it('help for an unknown topic is a usage error', async () => {
    expect(await run('help', 'bogus')).toEqual({
      code: 64,
      out: '',
      err: 'Error: unknown help topic "bogus"\nRun \'flotilla help\' for usage.\n',
    });
  });

  it('refuses a relative unix endpoint like fleetctl does', async () => {
    const r = await run('--endpoint=unix://var/run/fleet.sock', 'list-machines');
    expect(r.code).toBe(1);
    expect(r.err).toContain('unable to connect to host "var" with scheme "unix"');
  });
});

describe('tabwriter (Go text/tabwriter with padchar \\t)', () => {
  it('pads columns with tabs to multiples of 8, like fleetctl', () => {
    expect(
      tabwrite([
        ['MACHINE', 'IP', 'METADATA'],
        ['4d389537...', '172.18.1.1', 'region=eu'],
      ]),
    ).toBe('MACHINE\t\tIP\t\tMETADATA\n4d389537...\t172.18.1.1\tregion=eu\n');
  });

  it('counts code points, not UTF-16 units', () => {
    expect(
      tabwrite([
        ['ünï', 'x'],
        ['abcdefgh', 'y'],
      ]),
    ).toBe('ünï\t\tx\nabcdefgh\ty\n');
  });
});
