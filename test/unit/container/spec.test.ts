/** [Container] parsing and validation, image references, and the generated service. Pure. */
import { describe, expect, it } from 'vitest';
import { isCode } from '../../../src/lib/errors.js';
import {
  generateContainerService,
  installedHash,
  isGeneratedService,
  safeFileName,
  systemdWord,
} from '../../../src/container/generate.js';
import {
  isValidImageReference,
  normalizeImageReference,
  parseImageReference,
} from '../../../src/docker/reference.js';
import {
  defaultContainerName,
  parseContainerSection,
  parsePublish,
  parseTimeSpan,
  splitWords,
  type ContainerSpec,
} from '../../../src/container/spec.js';
import { UnitFile } from '../../../src/unit/index.js';

function spec(container: string, name = 'web.service', extra = ''): ContainerSpec {
  return parseContainerSection(name, UnitFile.parse(`[Container]\n${container}\n${extra}`));
}

function specError(container: string, name = 'web.service', extra = ''): string {
  try {
    spec(container, name, extra);
  } catch (err) {
    expect(isCode(err, 'E_CONTAINER_SPEC') || isCode(err, 'E_UNIT_NAME')).toBe(true);
    return (err as Error).message;
  }
  throw new Error('expected an error');
}

describe('image references', () => {
  it.each([
    'busybox',
    'busybox:latest',
    'library/busybox:1.36.1',
    'flotilla-testenv/busybox:latest',
    '127.0.0.1:5000/app/web:v2',
    'registry.example.com/team/app@sha256:' + 'a'.repeat(64),
    'localhost/a_b__c-d.e:tag_1.2-x',
    '[::1]:5000/app:1',
  ])('accepts %s', (ref) => {
    expect(isValidImageReference(ref)).toBe(true);
  });

  it.each([
    ['busybox;rm -rf /', '";"'],
    ['busybox && reboot', 'whitespace'],
    ['busybox$(id)', '"$"'],
    ['busy`id`box', '"`"'],
    ['busybox|nc', '"|"'],
    ["busybox'", `"'"`],
    ['busybox\nx', 'whitespace'],
    ['Busybox', 'lowercase'],
    ['-busybox', 'not a valid image reference'],
    ['busybox:', 'not a valid image reference'],
    ['busybox:-tag', 'not a valid image reference'],
    ['', 'empty'],
    ['a'.repeat(300), 'longer than 255'],
  ])('rejects %j (%s)', (ref, why) => {
    const r = parseImageReference(ref);
    expect('why' in r && r.why).toContain(why);
  });

  it('normalises the tag like docker pull does', () => {
    expect(normalizeImageReference('busybox')).toBe('busybox:latest');
    expect(normalizeImageReference('127.0.0.1:5000/app')).toBe('127.0.0.1:5000/app:latest');
    expect(normalizeImageReference('app:1')).toBe('app:1');
    const d = `app@sha256:${'b'.repeat(64)}`;
    expect(normalizeImageReference(d)).toBe(d);
  });
});

describe('[Container] section', () => {
  it('reads every key', () => {
    const s = spec(
      [
        'Image=127.0.0.1:5000/web:1',
        'Name=web-%i',
        'Exec=httpd -f -p "8080" -h \'/srv/my www\'',
        'Environment=A=1 "B=two words"',
        'Environment=C=%n',
        'EnvironmentFile=-/etc/web.env',
        'EnvironmentFile=/etc/web2.env',
        'Volume=/srv/data:/data:ro,z',
        'Volume=cache:/cache',
        'Network=bridge',
        'Publish=127.0.0.1:8080:80',
        'Publish=[::1]::443/udp',
        'Publish=9000',
        'Label=tier=web "team=a b"',
        'User=1000:1000',
        'PullPolicy=always',
        'StopTimeout=1m30s',
        'HealthCmd=wget -q -O- http://127.0.0.1:80/',
        'HealthInterval=2s',
        'HealthRetries=3',
        'Service=web:80',
        'Service=metrics:9000',
      ].join('\n'),
      'web@blue.service',
    );
    expect(s).toEqual({
      image: '127.0.0.1:5000/web:1',
      name: 'web-blue',
      exec: ['httpd', '-f', '-p', '8080', '-h', '/srv/my www'],
      environment: [
        ['A', '1'],
        ['B', 'two words'],
        ['C', 'web@blue.service'],
      ],
      environmentFiles: [
        { path: '/etc/web.env', optional: true },
        { path: '/etc/web2.env', optional: false },
      ],
      volumes: [
        { source: '/srv/data', target: '/data', options: ['ro', 'z'] },
        { source: 'cache', target: '/cache', options: [] },
      ],
      network: 'bridge',
      publish: [
        { containerPort: 80, protocol: 'tcp', hostIp: '127.0.0.1', hostPort: 8080 },
        { containerPort: 443, protocol: 'udp', hostIp: '::1' },
        { containerPort: 9000, protocol: 'tcp' },
      ],
      labels: { tier: 'web', team: 'a b' },
      user: '1000:1000',
      pullPolicy: 'always',
      stopTimeout: 90,
      health: { cmd: ['wget', '-q', '-O-', 'http://127.0.0.1:80/'], intervalSec: 2, retries: 3 },
      services: [
        { name: 'web', port: 80 },
        { name: 'metrics', port: 9000 },
      ],
    });
  });

  it('has defaults: name from the unit, PullPolicy=missing, StopTimeout=10', () => {
    const s = spec('Image=busybox', 'hello@1.service');
    expect(s.name).toBe('flotilla-hello_1');
    expect(s.pullPolicy).toBe('missing');
    expect(s.stopTimeout).toBe(10);
    expect(s.exec).toBeUndefined();
    expect(defaultContainerName('a\\x2db.service')).toBe('flotilla-a_x2db');
  });

  it('an empty list value resets the list (systemd)', () => {
    expect(spec('Image=busybox\nEnvironment=A=1\nEnvironment=\nEnvironment=B=2').environment).toEqual([
      ['B', '2'],
    ]);
  });

  it.each([
    ['Exec=sh', 'Image: required'],
    ['Image=busybox;reboot', 'Image="busybox;reboot": contains ";"'],
    ['Image=busybox $(reboot)', 'whitespace'],
    ['Image=busybox\nImage=alpine', 'Image="alpine": given more than once'],
    ['Image=busybox\nName=-bad', 'Name="-bad": container names'],
    ['Image=busybox\nName=a/b', 'Name="a/b"'],
    ['Image=busybox\nExec=sh -c "unterminated', 'unterminated double quote'],
    ['Image=busybox\nExec=echo 100%', 'lone "%"'],
    ['Image=busybox\nExec=echo %h', 'unsupported specifier %h'],
    ['Image=busybox\nEnvironment=novalue', 'is not NAME=VALUE'],
    ['Image=busybox\nEnvironment=1A=x', 'not a valid variable name'],
    ['Image=busybox\nEnvironmentFile=relative.env', 'absolute path'],
    ['Image=busybox\nVolume=/a', 'SOURCE:TARGET'],
    ['Image=busybox\nVolume=rel/a:/b', 'absolute path or a volume name'],
    ['Image=busybox\nVolume=/a:b', 'target'],
    ['Image=busybox\nVolume=/a/../etc:/b', '".."'],
    ['Image=busybox\nVolume=/a:/b:rx', 'unknown volume option "rx"'],
    ['Image=busybox\nNetwork=host;x', 'Network="host;x": must be'],
    ['Image=busybox\nPublish=80:abc', 'container port "abc"'],
    ['Image=busybox\nPublish=70000:80', 'host port "70000"'],
    ['Image=busybox\nPublish=0', 'container port "0"'],
    ['Image=busybox\nPublish=80/sctp', 'protocol "sctp"'],
    ['Image=busybox\nPublish=1.2.3:80:80', 'not an IPv4 address'],
    ['Image=busybox\nPublish=a:b:c:d', 'expected'],
    ['Image=busybox\nNetwork=host\nPublish=8080:80', 'has no effect with Network=host'],
    ['Image=busybox\nNetwork=none\nPublish=8080:80', 'Network=none'],
    ['Image=busybox\nLabel=flotilla.unit=x', 'reserved for flotilla'],
    ['Image=busybox\nLabel=-x=1', 'not a valid label key'],
    ['Image=busybox\nUser=root;x', 'USER or USER:GROUP'],
    ['Image=busybox\nPullPolicy=sometimes', 'always, missing or never'],
    ['Image=busybox\nStopTimeout=soon', 'not a time span'],
    ['Image=busybox\nStopTimeout=2h', 'at most 3600'],
    ['Image=busybox\nHealthInterval=5s', 'needs HealthCmd='],
    ['Image=busybox\nHealthCmd=true\nHealthRetries=0', 'HealthRetries="0"'],
    ['Image=busybox\nService=web', 'NAME:PORT'],
    ['Image=busybox\nService=Web:80', 'NAME:PORT'],
    ['Image=busybox\nService=web:0', 'PORT must be'],
    ['Image=busybox\nService=web:80\nService=web:81', 'given more than once'],
    ['Image=busybox\nPorts=80', 'unknown key'],
  ])('%j → %s', (body, message) => {
    expect(specError(body)).toContain(message);
  });

  it('names the unit and the key in the message', () => {
    expect(specError('Image=busybox\nPublish=80:abc')).toBe(
      'web.service: [Container] Publish="80:abc": container port "abc" must be a number from 1 to 65535',
    );
  });

  it('refuses [Service] keys the generated service owns, and non-service units', () => {
    expect(specError('Image=busybox', 'web.service', '[Service]\nExecStart=/bin/true')).toContain(
      '[Service] ExecStart= cannot be used with a [Container] section',
    );
    expect(specError('Image=busybox', 'web.service', '[Service]\nType=forking')).toContain('Type=');
    expect(specError('Image=busybox', 'web.timer')).toContain('only .service units');
  });

  it('splits words like systemd, never through a shell', () => {
    expect(splitWords(`a "b c" 'd "e"' f\\ g h\\"i`)).toEqual(['a', 'b c', 'd "e"', 'f g', 'h"i']);
    expect(splitWords('  ')).toEqual([]);
    expect(splitWords('sh -c "echo $HOME; ls | wc"')).toEqual(['sh', '-c', 'echo $HOME; ls | wc']);
    expect(() => splitWords('x\\')).toThrow(/backslash/);
  });

  it('parses time spans and publish specs', () => {
    expect(parseTimeSpan('10')).toBe(10);
    expect(parseTimeSpan('1min 30s')).toBe(90);
    expect(parseTimeSpan('500ms')).toBe(0.5);
    expect(parseTimeSpan('1x')).toBeUndefined();
    expect(parsePublish('8080:80/udp')).toEqual({ containerPort: 80, protocol: 'udp', hostPort: 8080 });
    expect(parsePublish('10.0.0.1::80')).toEqual({ containerPort: 80, protocol: 'tcp', hostIp: '10.0.0.1' });
  });
});

describe('generated service', () => {
  const src = UnitFile.parse(
    [
      '[Unit]',
      'Description=Web',
      'After=network.target',
      '[Container]',
      'Image=busybox',
      'Exec=sleep 1000',
      'StopTimeout=5',
      '[Service]',
      'Restart=on-failure',
      '[X-Fleet]',
      'MachineMetadata=role=web',
    ].join('\n'),
  );
  const s = parseContainerSection('web.service', src);
  const opts = {
    node: '/usr/bin/node',
    entry: '/opt/flotilla/dist/docker/runner-main.js',
    specPath: '/run/flotilla/containers/web.service.json',
  };
  const gen = generateContainerService('web.service', src, s, opts);

  it('runs the runner under systemd and keeps the unit’s own options', () => {
    expect(gen.get('Service', 'Type')).toBe('notify');
    expect(gen.get('Service', 'NotifyAccess')).toBe('all');
    expect(gen.get('Service', 'KillMode')).toBe('mixed');
    expect(gen.get('Service', 'ExecStart')).toBe(
      '/usr/bin/node /opt/flotilla/dist/docker/runner-main.js run /run/flotilla/containers/web.service.json',
    );
    expect(gen.get('Service', 'ExecStopPost')).toBe(
      '-/usr/bin/node /opt/flotilla/dist/docker/runner-main.js cleanup /run/flotilla/containers/web.service.json',
    );
    expect(gen.get('Service', 'TimeoutStopSec')).toBe('35');
    expect(gen.get('Service', 'SyslogIdentifier')).toBe('web');
    expect(gen.get('Service', 'Restart')).toBe('on-failure');
    expect(gen.getAll('Unit', 'After')).toEqual(['docker.service', 'network.target']);
    expect(gen.get('Unit', 'Description')).toBe('Web');
    expect(gen.get('X-Fleet', 'MachineMetadata')).toBe('role=web');
    expect(gen.sections()).not.toContain('Container');
    expect(gen.get('X-Container', 'Image')).toBe('busybox');
  });

  it('remembers the submitted unit’s hash (the agent recognises it after a restart)', () => {
    const back = UnitFile.parse(gen.serialize());
    expect(isGeneratedService(back)).toBe(true);
    expect(installedHash(back)).toBe(src.hash());
    expect(installedHash(src)).toBe(src.hash());
    expect(isGeneratedService(src)).toBe(false);
  });

  it('quotes paths for systemd (specifiers, variables, spaces)', () => {
    expect(systemdWord('/a/b-c_d.js')).toBe('/a/b-c_d.js');
    expect(systemdWord('/my dir/x')).toBe('"/my dir/x"');
    expect(systemdWord('/a%b$c\\d"e')).toBe('"/a%%b$$c\\\\d\\"e"');
    expect(safeFileName('web\\x2d1@a:b.service')).toBe('web_5cx2d1@a_3ab.service');
    expect(safeFileName('a_b.service')).toBe('a_5fb.service');
  });
});
