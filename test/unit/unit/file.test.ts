import { describe, expect, it } from 'vitest';
import { FlotillaError } from '../../../src/lib/errors.js';
import { UnitFile, type UnitOption } from '../../../src/unit/index.js';

const opt = (section: string, name: string, value: string): UnitOption => ({ section, name, value });

function parseError(input: string | Uint8Array): FlotillaError {
  try {
    UnitFile.parse(input);
  } catch (err) {
    expect(err).toBeInstanceOf(FlotillaError);
    return err as FlotillaError;
  }
  throw new Error('expected UnitFile.parse to throw');
}

describe('UnitFile.parse: syntax rules', () => {
  const cases: { name: string; input: string; options: UnitOption[] }[] = [
    {
      name: 'sections and options',
      input: '[Unit]\nDescription=Foo\n\n[Service]\nExecStart=/bin/true\n',
      options: [opt('Unit', 'Description', 'Foo'), opt('Service', 'ExecStart', '/bin/true')],
    },
    {
      name: 'unknown sections are kept',
      input: '[X-Third-Party]\nPants=on\n[X-Fleet]\nGlobal=true\n',
      options: [opt('X-Third-Party', 'Pants', 'on'), opt('X-Fleet', 'Global', 'true')],
    },
    {
      name: 'repeated keys kept in order',
      input: '[Unit]\nAfter=a.service\nAfter=b.service\nRequires=a.service\nAfter=c.service\n',
      options: [
        opt('Unit', 'After', 'a.service'),
        opt('Unit', 'After', 'b.service'),
        opt('Unit', 'Requires', 'a.service'),
        opt('Unit', 'After', 'c.service'),
      ],
    },
    {
      name: 'empty assignment kept as an option',
      input: '[Service]\nExecStart=\nExecStart=/bin/b\nEnvironment=   \n',
      options: [
        opt('Service', 'ExecStart', ''),
        opt('Service', 'ExecStart', '/bin/b'),
        opt('Service', 'Environment', ''),
      ],
    },
    {
      name: 'a section repeated later merges in first-seen order',
      input: '[Unit]\nA=1\n[Service]\nB=2\n[Unit]\nC=3\n',
      options: [opt('Unit', 'A', '1'), opt('Service', 'B', '2'), opt('Unit', 'C', '3')],
    },
    {
      name: '# and ; comments at line start (also indented), before and inside sections',
      input: '; alpha\n# bravo\n[Unit]\n  # charlie\n\t; delta\n#Description=Foo\nDescription=Bar\n',
      options: [opt('Unit', 'Description', 'Bar')],
    },
    {
      name: '; and # inside a value are not comments',
      input: '[Unit]\nDescription=Hello; world # not a comment\n',
      options: [opt('Unit', 'Description', 'Hello; world # not a comment')],
    },
    {
      name: 'whitespace around key and value trimmed, inner kept',
      input: '[Unit]\n   Description   =   words   here  \t\nSome Thing = Bar\n',
      options: [opt('Unit', 'Description', 'words   here'), opt('Unit', 'Some Thing', 'Bar')],
    },
    {
      name: 'quotes, backslashes and = in values kept byte for byte',
      input:
        '[Service]\nExecStart=/bin/bash -c "while true; do echo \\"ping\\"; sleep 1; done"\nEnvironment="A=b c" \'D=e\'\n',
      options: [
        opt('Service', 'ExecStart', '/bin/bash -c "while true; do echo \\"ping\\"; sleep 1; done"'),
        opt('Service', 'Environment', '"A=b c" \'D=e\''),
      ],
    },
    {
      name: 'backslash continuation: backslash becomes one space, next line appended as is',
      input: '[Unit]\nDescription= Unnecessarily wrapped \\\n    words here\n',
      options: [opt('Unit', 'Description', 'Unnecessarily wrapped      words here')],
    },
    {
      name: 'continuation over several lines',
      input: '[Service]\nExecStart=/usr/bin/docker run \\\n  --rm \\\n  busybox\nUser=core\n',
      options: [
        opt('Service', 'ExecStart', '/usr/bin/docker run    --rm    busybox'),
        opt('Service', 'User', 'core'),
      ],
    },
    {
      name: 'comment lines inside a continuation are skipped',
      input: '[Service]\nExecStart=/bin/a \\\n# comment\n; other \\\n  -x\nUser=core\n',
      options: [opt('Service', 'ExecStart', '/bin/a    -x'), opt('Service', 'User', 'core')],
    },
    {
      name: 'a blank line ends a continuation',
      input: '[Unit]\nDescription=Bar \\\n\nAfter=x.service\n',
      options: [opt('Unit', 'Description', 'Bar'), opt('Unit', 'After', 'x.service')],
    },
    {
      name: 'continuation at end of file',
      input: '[Unit]\nDescription=Bar \\',
      options: [opt('Unit', 'Description', 'Bar')],
    },
    {
      name: 'blanks after the continuation backslash are ignored',
      input: '[Unit]\nDescription=a \\  \n  b\n',
      options: [opt('Unit', 'Description', 'a    b')],
    },
    {
      name: 'an even run of trailing backslashes is not a continuation',
      input: '[Unit]\nDescription=a\\\\\nAfter=b\n',
      options: [opt('Unit', 'Description', 'a\\\\'), opt('Unit', 'After', 'b')],
    },
    {
      name: 'a backslash followed by text is not a continuation',
      input: '[Unit]\nDescription=a\\b\nAfter=c\n',
      options: [opt('Unit', 'Description', 'a\\b'), opt('Unit', 'After', 'c')],
    },
    {
      name: 'a comment line ending in a backslash does not continue (systemd)',
      input: '[Service]\n# old: ExecStart=/bin/a \\\nExecStart=/bin/b\n',
      options: [opt('Service', 'ExecStart', '/bin/b')],
    },
    {
      name: 'CRLF line ends',
      input: '[Unit]\r\nDescription=Foo\r\n\r\n[Service]\r\nExecStart=/bin/true \\\r\n  -v\r\n',
      options: [opt('Unit', 'Description', 'Foo'), opt('Service', 'ExecStart', '/bin/true    -v')],
    },
    {
      name: 'no trailing newline',
      input: '[Unit]\nDescription=Bar',
      options: [opt('Unit', 'Description', 'Bar')],
    },
    {
      name: 'UTF-8 is preserved',
      input: '[©]\nµ☃=ÇôrèÕ$ 🚀',
      options: [opt('©', 'µ☃', 'ÇôrèÕ$ 🚀')],
    },
    {
      name: 'a leading BOM is dropped',
      input: '\ufeff[Unit]\nDescription=x\n',
      options: [opt('Unit', 'Description', 'x')],
    },
    {
      name: 'section header with surrounding blanks; names inside brackets kept verbatim',
      input: '  [Unit]  \nA=1\n[ Odd ]\nB=2\n',
      options: [opt('Unit', 'A', '1'), opt(' Odd ', 'B', '2')],
    },
    {
      name: 'sections without options vanish',
      input: '[Unit]\n[Service]\n[X-Third-Party]\n',
      options: [],
    },
    { name: 'empty input', input: '', options: [] },
    { name: 'only comments and blanks', input: '# a\n\n; b\n   \n', options: [] },
  ];

  it.each(cases)('$name', ({ input, options }) => {
    expect(UnitFile.parse(input).options).toEqual(options);
  });

  it('accepts bytes exactly like the decoded string', () => {
    const text = '[Unit]\nDescription=Grüße\n';
    const fromBytes = UnitFile.parse(new TextEncoder().encode(text));
    expect(fromBytes.options).toEqual(UnitFile.parse(text).options);
    expect(
      UnitFile.parse(new Uint8Array([0xef, 0xbb, 0xbf, ...new TextEncoder().encode(text)])).options,
    ).toEqual(fromBytes.options);
  });

  it('options are frozen', () => {
    const u = UnitFile.parse('[Unit]\nA=1\n');
    expect(Object.isFrozen(u.options)).toBe(true);
    expect(Object.isFrozen(u.options[0])).toBe(true);
  });
});

describe('UnitFile.parse: bad input', () => {
  const long = 'x'.repeat(2048);
  const cases: {
    name: string;
    input: string | Uint8Array;
    message: string;
    details: Record<string, unknown>;
  }[] = [
    {
      name: 'line over 2048 bytes',
      input: `[Unit]\nDescription=${long}\n`,
      message: 'line 2: line too long (max 2048 bytes)',
      details: { line: 2 },
    },
    {
      name: 'line over 2048 bytes counted in UTF-8 bytes, not characters',
      input: `[Unit]\n\nD=${'é'.repeat(1024)}\n`,
      message: 'line 3: line too long (max 2048 bytes)',
      details: { line: 3 },
    },
    {
      name: 'comment line over 2048 bytes',
      input: `# ${long}\n[Unit]\n`,
      message: 'line 1: line too long (max 2048 bytes)',
      details: { line: 1 },
    },
    {
      name: 'joined continuation over 2048 bytes',
      input: `[Unit]\nDescription=${'a'.repeat(1500)} \\\n${'b'.repeat(1500)}\n`,
      message: 'line 2: option "Description" too long once continuation lines are joined (max 2048 bytes)',
      details: { line: 2 },
    },
    {
      name: 'value ending in a backslash once joined (at end of file)',
      input: '[Unit]\nA=x \\ \\',
      message: 'line 2: option "A" ends in a backslash once continuation lines are joined',
      details: { line: 2 },
    },
    {
      name: 'value ending in a backslash once joined (blank line ends it)',
      input: '[Unit]\nA=1\nB=x \\\t\\\n\nC=2\n',
      message: 'line 3: option "B" ends in a backslash once continuation lines are joined',
      details: { line: 3 },
    },
    {
      name: 'body over 1 MiB (string)',
      input: `[Unit]\n${'# padding\n'.repeat(110_000)}`,
      message: 'unit file too large (max 1048576 bytes)',
      details: { max: 1048576 },
    },
    {
      name: 'body over 1 MiB counted in bytes',
      input: `[Unit]\n${'#é\n'.repeat(270_000)}`,
      message: 'unit file too large (max 1048576 bytes)',
      details: { max: 1048576 },
    },
    {
      name: 'body over 1 MiB (bytes)',
      input: new Uint8Array(1024 * 1024 + 1).fill(0x0a),
      message: 'unit file too large (max 1048576 bytes)',
      details: { max: 1048576 },
    },
    {
      name: 'invalid UTF-8: stray continuation byte',
      input: new Uint8Array([...new TextEncoder().encode('[Unit]\nA=b'), 0x80, 0x0a]),
      message: 'line 2: invalid UTF-8 at byte offset 10',
      details: { line: 2, offset: 10 },
    },
    {
      name: 'invalid UTF-8: overlong encoding',
      input: new Uint8Array([...new TextEncoder().encode('[Unit]\n\nA='), 0xc0, 0xaf]),
      message: 'line 3: invalid UTF-8 at byte offset 10',
      details: { line: 3, offset: 10 },
    },
    {
      name: 'invalid UTF-8: encoded surrogate',
      input: new Uint8Array([0x5b, 0xed, 0xa0, 0x80, 0x5d]),
      message: 'line 1: invalid UTF-8 at byte offset 1',
      details: { line: 1, offset: 1 },
    },
    {
      name: 'invalid UTF-8: truncated sequence at end',
      input: new Uint8Array([...new TextEncoder().encode('[Unit]\nA=é'), 0xe2, 0x82]),
      message: 'line 2: invalid UTF-8 at byte offset 11',
      details: { line: 2, offset: 11 },
    },
    {
      name: 'unpaired surrogate in a string',
      input: '[Unit]\nA=\ud800x\n',
      message: 'line 2: invalid text: unpaired UTF-16 surrogate at index 9',
      details: { line: 2, index: 9 },
    },
    {
      name: 'option before any section',
      input: 'Description=Foo\n[Unit]\n',
      message: 'line 1: option "Description" appears before any [Section] header',
      details: { line: 1 },
    },
    {
      name: 'garbage before any section',
      input: '# fine\n<<<<<<<<\n[Unit]\n',
      message: 'line 2: expected a [Section] header, found "<<<<<<<<"',
      details: { line: 2 },
    },
    {
      name: 'unterminated section header',
      input: '[Unit\nDescription=Foo\n',
      message: 'line 1: malformed section header "[Unit"',
      details: { line: 1 },
    },
    {
      name: 'garbage after section header',
      input: '[Unit]\nA=1\n[Service] pants\n',
      message: 'line 3: malformed section header "[Service] pants"',
      details: { line: 3 },
    },
    {
      name: 'nested brackets in section header',
      input: '[Un[it]\n',
      message: 'line 1: malformed section header "[Un[it]"',
      details: { line: 1 },
    },
    {
      name: 'empty section name',
      input: '[]\nA=1\n',
      message: 'line 1: empty section name "[]"',
      details: { line: 1 },
    },
    {
      name: 'blank section name',
      input: '[  ]\nA=1\n',
      message: 'line 1: empty section name "[  ]"',
      details: { line: 1 },
    },
    {
      name: 'line with no "="',
      input: '[Unit]\nDescription\n',
      message: 'line 2: missing "=" in "Description"',
      details: { line: 2 },
    },
    {
      name: 'long line with no "=" is excerpted',
      input: `[Unit]\n${'y'.repeat(100)}\n`,
      message: `line 2: missing "=" in "${'y'.repeat(40)}"…`,
      details: { line: 2 },
    },
    {
      name: 'empty option name',
      input: '[Unit]\n  = value\n',
      message: 'line 2: missing option name before "=" in "= value"',
      details: { line: 2 },
    },
    {
      name: 'continued line missing "=" reports its first line',
      input: '[Unit]\nA=1\nfoo \\\nbar\n',
      message: 'line 3: missing "=" in "foo  bar"',
      details: { line: 3 },
    },
    {
      name: 'NUL byte (string)',
      input: '[Unit]\nA=b\0c\n',
      message: 'line 2: NUL byte not allowed',
      details: { line: 2 },
    },
    {
      name: 'NUL byte (bytes)',
      input: new Uint8Array([0x5b, 0x55, 0x5d, 0x0a, 0x41, 0x3d, 0x00]),
      message: 'line 2: NUL byte not allowed',
      details: { line: 2 },
    },
    {
      name: 'NUL byte in a comment',
      input: '[Unit]\n# a\0\n',
      message: 'line 2: NUL byte not allowed',
      details: { line: 2 },
    },
    {
      name: 'bare carriage return',
      input: '[Unit]\nA=b\rUser=root\n',
      message: 'line 2: carriage return not followed by a newline',
      details: { line: 2 },
    },
  ];

  it.each(cases)('$name', ({ input, message, details }) => {
    const err = parseError(input);
    expect(err.code).toBe('E_UNIT_PARSE');
    expect(err.message).toBe(message);
    expect(err.details).toEqual(details);
  });

  it('accepts a line of exactly 2048 bytes', () => {
    const value = 'v'.repeat(2048 - 'D='.length);
    expect(UnitFile.parse(`[Unit]\nD=${value}\n`).get('Unit', 'D')).toBe(value);
  });

  it('accepts a body of exactly 1 MiB', () => {
    const head = '[Unit]\nA=1\n';
    const filler = '#'.repeat(1023) + '\n';
    let body = head + filler.repeat(Math.floor((1024 * 1024 - head.length) / filler.length));
    body += '#'.repeat(1024 * 1024 - body.length);
    expect(body.length).toBe(1024 * 1024);
    expect(UnitFile.parse(body).options).toHaveLength(1);
  });

  it('refuses input that is neither string nor bytes', () => {
    expect(() => UnitFile.parse(42 as unknown as string)).toThrow(
      expect.objectContaining({ code: 'E_UNIT_PARSE', message: 'unit file body must be a string or bytes' }),
    );
  });
});

describe('serialize (go-systemd unit.Serialize layout)', () => {
  const cases: { name: string; options: UnitOption[]; text: string }[] = [
    { name: 'no options: empty string', options: [], text: '' },
    {
      name: 'same section shares the header',
      options: [opt('Unit', 'Description', 'Foo'), opt('Unit', 'BindsTo', 'bar.service')],
      text: '[Unit]\nDescription=Foo\nBindsTo=bar.service\n',
    },
    {
      name: 'same names are not combined',
      options: [opt('Unit', 'Description', 'Foo'), opt('Unit', 'Description', 'Bar')],
      text: '[Unit]\nDescription=Foo\nDescription=Bar\n',
    },
    {
      name: 'blank line between sections, none at the end',
      options: [opt('Unit', 'Description', 'Foo'), opt('Service', 'ExecStart', '/usr/bin/sleep infinity')],
      text: '[Unit]\nDescription=Foo\n\n[Service]\nExecStart=/usr/bin/sleep infinity\n',
    },
    {
      name: 'grouped by section in first-seen order, options ordered within groups',
      options: [
        opt('Unit', 'Description', 'Foo'),
        opt('Service', 'ExecStart', '/usr/bin/sleep infinity'),
        opt('Unit', 'BindsTo', 'bar.service'),
        opt('X-Foo', 'Bar', 'baz'),
        opt('Service', 'ExecStop', '/usr/bin/sleep 1'),
        opt('Unit', 'Documentation', 'https://foo.com'),
      ],
      text:
        '[Unit]\nDescription=Foo\nBindsTo=bar.service\nDocumentation=https://foo.com\n\n' +
        '[Service]\nExecStart=/usr/bin/sleep infinity\nExecStop=/usr/bin/sleep 1\n\n[X-Foo]\nBar=baz\n',
    },
    {
      name: 'empty values written as Name=',
      options: [opt('Service', 'ExecStart', ''), opt('Service', 'ExecStart', '/bin/x')],
      text: '[Service]\nExecStart=\nExecStart=/bin/x\n',
    },
    { name: 'UTF-8', options: [opt('©', 'µ☃', 'ÇôrèÕ$')], text: '[©]\nµ☃=ÇôrèÕ$\n' },
  ];

  it.each(cases)('$name', ({ options, text }) => {
    const u = UnitFile.fromOptions(options);
    expect(u.serialize()).toBe(text);
    expect(String(u)).toBe(text);
    expect(UnitFile.parse(text).serialize()).toBe(text);
  });

  it('drops comments and blank lines and regroups (fleetctl cat)', () => {
    const input = '# header\n[Unit]\nDescription=x\n\n\n[Service]\n; c\nExecStart=/bin/a\n[Unit]\nAfter=b\n';
    expect(UnitFile.parse(input).serialize()).toBe(
      '[Unit]\nDescription=x\nAfter=b\n\n[Service]\nExecStart=/bin/a\n',
    );
  });
});

describe('hash (fleet: SHA-1 of the normal form)', () => {
  const cases: { name: string; input: string; hash: string }[] = [
    {
      // fleet's functional/fixtures/units/hello.service; fleet.md: hello.service hashes to 3750b3e9…
      // printf '[Service]\nExecStart=/bin/bash -c "while true; do echo Hello, World!; sleep 1; done"\n' | sha1sum
      name: 'fleet hello.service',
      input: '[Service]\nExecStart=/bin/bash -c "while true; do echo Hello, World!; sleep 1; done"\n',
      hash: '3750b3e9f3962a56c7582929426e9abb012754cf',
    },
    {
      // same unit with a comment and extra blank lines (fleet's hello2.service case): same hash
      name: 'comments and blank lines do not change the hash',
      input:
        '# say hello\n\n[Service]\n\n\nExecStart = /bin/bash -c "while true; do echo Hello, World!; sleep 1; done"   \n\n',
      hash: '3750b3e9f3962a56c7582929426e9abb012754cf',
    },
    {
      // printf '[Unit]\nDescription=My Service\nAfter=docker.service\n\n[Service]\nExecStart=/usr/bin/docker run --rm --name web -p 80:80 nginx\n\n[X-Fleet]\nConflicts=web@*.service\n' | sha1sum
      name: 'three sections, regrouped',
      input:
        '[Unit]\nDescription=My Service\n[Service]\nExecStart=/usr/bin/docker run\\\n--rm --name web -p 80:80 nginx\n' +
        '[X-Fleet]\nConflicts=web@*.service\n[Unit]\nAfter=docker.service\n',
      hash: 'acc94f3e16fed098b763c6647fb5e4b4d9622a01',
    },
    {
      // printf '[Unit]\nDescription=Hello; world\n' | sha1sum
      name: 'inline ; kept',
      input: '[Unit]\nDescription=Hello; world\n',
      hash: 'a3a44c220db0403a9c1ca241792e0a90cc0bc105',
    },
    // printf '' | sha1sum
    { name: 'empty unit', input: '# nothing\n', hash: 'da39a3ee5e6b4b0d3255bfef95601890afd80709' },
  ];

  it.each(cases)('$name', ({ input, hash }) => {
    const u = UnitFile.parse(input);
    expect(u.hash()).toBe(hash);
    expect(u.shortHash()).toBe(hash.slice(0, 7));
    expect(u.hash()).toMatch(/^[0-9a-f]{40}$/);
  });

  it('fromOptions and parse agree', () => {
    const u = UnitFile.fromOptions([
      opt('Service', 'ExecStart', '/bin/bash -c "while true; do echo Hello, World!; sleep 1; done"'),
    ]);
    expect(u.hash()).toBe('3750b3e9f3962a56c7582929426e9abb012754cf');
  });
});

describe('round trip on realistic units', () => {
  const units: Record<string, string> = {
    'etcd-style docker unit with continuations and quotes': `# Copyright CoreOS
[Unit]
Description=Apache web server; fronted by nginx
Documentation=https://example.com/docs
After=docker.service
Requires=docker.service

[Service]
TimeoutStartSec=0
# pull first
ExecStartPre=-/usr/bin/docker kill apache1
ExecStartPre=-/usr/bin/docker rm apache1
ExecStartPre=/usr/bin/docker pull coreos/apache
ExecStart=/usr/bin/docker run --name apache1 \\
    -p 80:80 \\
    # the comment inside the continuation is skipped
    -e "MESSAGE=hello world" \\
    coreos/apache /usr/sbin/apache2ctl -D FOREGROUND
ExecStop=/usr/bin/docker stop apache1
Environment="ONE=1" "TWO=two words"
Restart=always
RestartSec=10s

[Install]
WantedBy=multi-user.target

[X-Fleet]
Conflicts=apache@*.service
MachineMetadata="region=us-east-1" "disk=ssd"
`,
    'sidekick unit': `[Unit]
Description=Announce apache1
BindsTo=apache@%i.service
After=apache@%i.service

[Service]
ExecStart=/bin/sh -c "while true; do etcdctl set /services/website/apache@%i '{ \\"host\\": \\"%H\\", \\"port\\": 80, \\"version\\": \\"52c7248a14\\" }' --ttl 60;sleep 45;done"
ExecStop=/usr/bin/etcdctl rm /services/website/apache@%i

[X-Fleet]
MachineOf=apache@%i.service
`,
    'global timer with CRLF and odd spacing':
      '[Unit]\r\nDescription = cleanup \r\n\r\n[Timer]\r\nOnCalendar=*-*-* 04:00:00\r\n ; comment\r\n[X-Fleet]\r\nGlobal = true\r\n',
    'reset lists and empty values': '[Service]\nExecStart=\nExecStart=/bin/true\nEnvironment=\n',
    'backslashes that are not continuations':
      '[Service]\nExecStart=/bin/echo a\\\\\nExecStop=/bin/echo \\n\\t\n',
  };

  it.each(Object.entries(units))('%s', (_name, text) => {
    const once = UnitFile.parse(text);
    const twice = UnitFile.parse(once.serialize());
    expect(twice.serialize()).toBe(once.serialize());
    expect(twice.options).toEqual(once.options);
    expect(twice.hash()).toBe(once.hash());
    expect(UnitFile.parse(new TextEncoder().encode(text)).hash()).toBe(once.hash());
  });

  it('parses the docker unit as systemd would', () => {
    const u = UnitFile.parse(units['etcd-style docker unit with continuations and quotes'] ?? '');
    expect(u.get('Service', 'ExecStart')).toBe(
      '/usr/bin/docker run --name apache1      -p 80:80      -e "MESSAGE=hello world"      coreos/apache /usr/sbin/apache2ctl -D FOREGROUND',
    );
    expect(u.getAll('Service', 'ExecStartPre')).toEqual([
      '-/usr/bin/docker kill apache1',
      '-/usr/bin/docker rm apache1',
      '/usr/bin/docker pull coreos/apache',
    ]);
    expect(u.get('Service', 'Environment')).toBe('"ONE=1" "TWO=two words"');
    expect(u.sections()).toEqual(['Unit', 'Service', 'Install', 'X-Fleet']);
    expect(u.description()).toBe('Apache web server; fronted by nginx');
  });
});

describe('accessors', () => {
  const u = UnitFile.parse(
    '[Unit]\nDescription=first\nDescription=second\n[Service]\nExecStart=/a\nExecStart=\nExecStart=/b\n',
  );

  it('get returns the last value, undefined when absent', () => {
    expect(u.get('Unit', 'Description')).toBe('second');
    expect(u.get('Service', 'ExecStart')).toBe('/b');
    expect(u.get('Service', 'Nope')).toBeUndefined();
    expect(u.get('Nope', 'Description')).toBeUndefined();
  });

  it('getAll returns every value including resets', () => {
    expect(u.getAll('Service', 'ExecStart')).toEqual(['/a', '', '/b']);
    expect(u.getAll('Unit', 'Nope')).toEqual([]);
  });

  it('keys and sections are case-sensitive', () => {
    expect(u.get('unit', 'Description')).toBeUndefined();
    expect(u.get('Unit', 'description')).toBeUndefined();
  });

  it('sections in first-seen order', () => {
    expect(u.sections()).toEqual(['Unit', 'Service']);
    expect(UnitFile.parse('').sections()).toEqual([]);
  });

  it('description is the first [Unit] Description, as fleet shows it', () => {
    expect(u.description()).toBe('first');
    expect(UnitFile.parse('[Service]\nDescription=x\n').description()).toBeUndefined();
  });
});

describe('UnitFile.fromOptions validation', () => {
  const cases: { name: string; options: unknown[]; message: string }[] = [
    { name: 'empty section', options: [opt('', 'A', 'b')], message: 'option 0 (A in []): section is empty' },
    {
      name: 'blank section',
      options: [opt('  ', 'A', 'b')],
      message: 'option 0 (A in [  ]): section is blank',
    },
    {
      name: 'bracket in section',
      options: [opt('Unit', 'A', 'b'), opt('Un]it', 'A', 'b')],
      message: 'option 1 (A in [Un]it]): section contains "[" or "]"',
    },
    { name: 'empty name', options: [opt('Unit', '', 'b')], message: 'option 0 ( in [Unit]): name is empty' },
    {
      name: '= in name',
      options: [opt('Unit', 'A=B', 'c')],
      message: 'option 0 (A=B in [Unit]): name contains "="',
    },
    {
      name: 'comment-like name',
      options: [opt('Unit', '#A', 'c')],
      message: 'option 0 (#A in [Unit]): name starts with "#", ";" or "["',
    },
    {
      name: 'blank around name',
      options: [opt('Unit', ' A', 'c')],
      message: 'option 0 ( A in [Unit]): name has leading or trailing whitespace',
    },
    {
      name: 'newline in value',
      options: [opt('Service', 'ExecStart', '/bin/a\nUser=root')],
      message: 'option 0 (ExecStart in [Service]): value contains a newline, carriage return or NUL',
    },
    {
      name: 'carriage return in value',
      options: [opt('Service', 'ExecStart', '/bin/a\rb')],
      message: 'option 0 (ExecStart in [Service]): value contains a newline, carriage return or NUL',
    },
    {
      name: 'newline in section',
      options: [opt('Un\nit', 'A', 'b')],
      message: 'option 0 (A in [Un\nit]): section contains a newline, carriage return or NUL',
    },
    {
      name: 'NUL in name',
      options: [opt('Unit', 'A\0', 'b')],
      message: 'option 0 (A\0 in [Unit]): name contains a newline, carriage return or NUL',
    },
    {
      name: 'blank around value',
      options: [opt('Unit', 'A', ' b')],
      message: 'option 0 (A in [Unit]): value has leading or trailing whitespace',
    },
    {
      name: 'continuation backslash at end of value',
      options: [opt('Service', 'ExecStart', '/bin/a \\')],
      message:
        'option 0 (ExecStart in [Service]): value ends with a backslash (it would continue onto the next line)',
    },
    {
      name: 'line too long',
      options: [opt('Unit', 'D', 'x'.repeat(2047))],
      message: 'option 0 (D in [Unit]): line too long (max 2048 bytes)',
    },
    {
      name: 'not strings',
      options: [{ section: 'Unit', name: 'A', value: 1 }],
      message: 'option 0 (A in [Unit]): section, name and value must be strings',
    },
    { name: 'not an object', options: [null], message: 'option 0: not an object' },
    {
      name: 'unpaired surrogate',
      options: [opt('Unit', 'A', 'x\udc00')],
      message: 'option 0 (A in [Unit]): value contains an unpaired UTF-16 surrogate at index 1',
    },
  ];

  it.each(cases)('$name', ({ options, message }) => {
    expect(() => UnitFile.fromOptions(options as UnitOption[])).toThrow(
      expect.objectContaining({ code: 'E_UNIT_PARSE', message }),
    );
  });

  it('names the failing option in details', () => {
    try {
      UnitFile.fromOptions([opt('Unit', 'A', 'ok'), opt('Service', 'ExecStart', 'a\nb')]);
      expect.unreachable();
    } catch (err) {
      expect((err as FlotillaError).details).toEqual({ index: 1, section: 'Service', name: 'ExecStart' });
    }
  });

  it('refuses a non-array', () => {
    expect(() => UnitFile.fromOptions({} as UnitOption[])).toThrow(
      expect.objectContaining({ code: 'E_UNIT_PARSE', message: 'unit options must be an array' }),
    );
  });

  it('accepts values parse can produce: even backslash runs, inner blanks, empty values, long lines up to 2048', () => {
    const options = [
      opt('Service', 'ExecStart', '/bin/echo a\\\\'),
      opt('Service', 'Environment', ''),
      opt('Some Section', 'Odd Name', 'x  y'),
      opt('Unit', 'D', 'x'.repeat(2046)),
    ];
    const u = UnitFile.fromOptions(options);
    expect(UnitFile.parse(u.serialize()).options).toEqual(options);
  });

  it('copies its input', () => {
    const options = [opt('Unit', 'A', '1')];
    const u = UnitFile.fromOptions(options);
    options[0]!.value = '2';
    options.push(opt('Unit', 'B', '3'));
    expect(u.options).toEqual([opt('Unit', 'A', '1')]);
  });

  it('refuses a unit whose normal form exceeds 1 MiB', () => {
    const options = Array.from({ length: 600 }, (_, i) => opt('S', `K${i}`, 'v'.repeat(2000)));
    expect(() => UnitFile.fromOptions(options)).toThrow(
      expect.objectContaining({
        code: 'E_UNIT_PARSE',
        message: 'unit file too large once normalised (max 1048576 bytes)',
      }),
    );
  });
});
