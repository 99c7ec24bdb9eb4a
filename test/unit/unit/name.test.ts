import { describe, expect, it } from 'vitest';
import {
  TEMPLATE_SUFFIXES,
  UNIT_SUFFIXES,
  isInstanceName,
  isTemplateName,
  mangleUnitName,
  parseUnitName,
  templateName,
  validateUnitName,
} from '../../../src/unit/index.js';

describe('validateUnitName: fleet rules and exact messages', () => {
  const invalid: [string, string][] = [
    ['', 'unit name cannot be empty'],
    [`${'a'.repeat(249)}.service`, 'unit name exceeds maximum length (256)'],
    [`${'é'.repeat(125)}.service`, 'unit name exceeds maximum length (256)'], // 133 characters, 258 bytes
    ['foo', 'unit name must contain "."'],
    ['foo.', 'unit name cannot end in "."'],
    ['foo.service.', 'unit name cannot end in "."'],
    ['foo.bar', 'invalid unit type: "bar"'],
    ['foo.Service', 'invalid unit type: "Service"'],
    ['foo.servic"e', 'invalid unit type: "servic\\"e"'],
    ['foo.sérvice', 'invalid unit type: "sérvice"'],
    ['foo@.mount', 'invalid unit type for template: "mount"'],
    ['foo@bar.device', 'invalid unit type for template: "device"'],
    ['foo@1.slice', 'invalid unit type for template: "slice"'],
    ['fo!o.service', "invalid character '!' in unit name"],
    ['foo bar.service', "invalid character ' ' in unit name"],
    ["it's.service", "invalid character '\\'' in unit name"],
    ['say"hi.service', "invalid character '\"' in unit name"],
    ['caf€.service', "invalid character '€' in unit name"],
    ['a%i.service', "invalid character '%' in unit name"],
    ['@foo.service', 'unit name cannot start in "@"'],
    ['@.service', 'unit name cannot start in "@"'],
    // flotilla hardening, checked right after the length
    ['../x.service', 'unit name must not contain "/" (path-like names are refused): "../x.service"'],
    ['a/b.service', 'unit name must not contain "/" (path-like names are refused): "a/b.service"'],
    ['foo.service/..', 'unit name must not contain "/" (path-like names are refused): "foo.service/.."'],
    ['/etc/passwd', 'unit name must not contain "/" (path-like names are refused): "/etc/passwd"'],
    ['foo\0.service', "unit name must not contain control characters: found '\\x00' at index 3"],
    ['foo\n.service', "unit name must not contain control characters: found '\\n' at index 3"],
    ['foo.service\t', "unit name must not contain control characters: found '\\t' at index 11"],
    ['a\x7f.service', "unit name must not contain control characters: found '\\x7f' at index 1"],
    ['a\u0085.service', "unit name must not contain control characters: found '\\u0085' at index 1"],
  ];

  it.each(invalid)('%j → %s', (name, message) => {
    expect(() => validateUnitName(name)).toThrow(expect.objectContaining({ code: 'E_UNIT_NAME', message }));
  });

  it('puts the name (and index for control characters) in details', () => {
    try {
      validateUnitName('ab\0.service');
      expect.unreachable();
    } catch (err) {
      expect(err).toMatchObject({ details: { name: 'ab\0.service', index: 2 } });
    }
  });

  it('refuses a non-string', () => {
    expect(() => validateUnitName(7 as unknown as string)).toThrow(
      expect.objectContaining({ code: 'E_UNIT_NAME', message: 'unit name must be a string' }),
    );
  });

  const valid = [
    'a.service',
    `${'a'.repeat(248)}.service`, // exactly 256
    'hello.service',
    'foo.target',
    'x.slice',
    'my-app_v2:blue.service',
    'dev-disk-by\\x2dlabel-data.device',
    'data.mount',
    'data.automount',
    'swapfile.swap',
    'init.scope',
    'snap.snapshot',
    'org.bus.busname',
    'backup.timer',
    'watch.path',
    'api.socket',
    'a.b.c.service',
    'foo@.service',
    'foo@.socket',
    'foo@.target',
    'foo@.timer',
    'foo@.path',
    'foo@1.service',
    'foo@a:b-c_d.e.service',
    'foo@a@b.service',
    'foo@@.service',
    '.service',
    '..service',
  ];

  it.each(valid)('%s is valid', (name) => {
    expect(() => validateUnitName(name)).not.toThrow();
  });

  it('knows every fleet unit type, and the template subset', () => {
    expect([...UNIT_SUFFIXES].sort()).toEqual([
      'automount',
      'busname',
      'device',
      'mount',
      'path',
      'scope',
      'service',
      'slice',
      'snapshot',
      'socket',
      'swap',
      'target',
      'timer',
    ]);
    expect([...TEMPLATE_SUFFIXES].sort()).toEqual(['path', 'service', 'socket', 'target', 'timer']);
  });
});

describe('parseUnitName', () => {
  const cases = [
    {
      name: 'hello.service',
      info: {
        fullName: 'hello.service',
        name: 'hello',
        prefix: 'hello',
        instance: '',
        suffix: 'service',
        template: undefined,
        isTemplate: false,
        isInstance: false,
      },
    },
    {
      name: 'foo@.socket',
      info: {
        fullName: 'foo@.socket',
        name: 'foo@',
        prefix: 'foo',
        instance: '',
        suffix: 'socket',
        template: 'foo@.socket',
        isTemplate: true,
        isInstance: false,
      },
    },
    {
      name: 'foo@bar.baz.service',
      info: {
        fullName: 'foo@bar.baz.service',
        name: 'foo@bar.baz',
        prefix: 'foo',
        instance: 'bar.baz',
        suffix: 'service',
        template: 'foo@.service',
        isTemplate: false,
        isInstance: true,
      },
    },
    {
      name: 'a.b.target',
      info: {
        fullName: 'a.b.target',
        name: 'a.b',
        prefix: 'a.b',
        instance: '',
        suffix: 'target',
        template: undefined,
        isTemplate: false,
        isInstance: false,
      },
    },
  ];

  it.each(cases)('$name', ({ name, info }) => {
    expect(parseUnitName(name)).toEqual(info);
  });

  it('validates first', () => {
    expect(() => parseUnitName('foo')).toThrow(
      expect.objectContaining({ code: 'E_UNIT_NAME', message: 'unit name must contain "."' }),
    );
  });
});

describe('templates and instances', () => {
  it.each([
    ['foo@.service', true, false],
    ['foo@1.service', false, true],
    ['foo.service', false, false],
    ['foo@.mount', false, false], // invalid: predicates never throw
    ['garbage', false, false],
  ])('%s: template %s, instance %s', (name, template, instance) => {
    expect(isTemplateName(name)).toBe(template);
    expect(isInstanceName(name)).toBe(instance);
  });

  it('templateName maps an instance to its template', () => {
    expect(templateName('foo@1.service')).toBe('foo@.service');
    expect(templateName('web@8080.socket')).toBe('web@.socket');
    expect(templateName('x@a@b.timer')).toBe('x@.timer');
  });

  it.each([
    ['foo.service', 'unit name "foo.service" is not a template instance (expected name@instance.type)'],
    ['foo@.service', 'unit name "foo@.service" is not a template instance (expected name@instance.type)'],
    ['foo', 'unit name must contain "."'],
  ])('templateName(%s) throws', (name, message) => {
    expect(() => templateName(name)).toThrow(expect.objectContaining({ code: 'E_UNIT_NAME', message }));
  });
});

describe('mangleUnitName (fleetctl unitNameMangle, minus the .target bug)', () => {
  it.each([
    ['foo', 'foo.service'],
    ['foo.service', 'foo.service'],
    ['foo/bar.socket', 'bar.socket'],
    ['/home/core/units/hello@.service', 'hello@.service'],
    ['units/hello@1.service', 'hello@1.service'],
    ['dir/', 'dir.service'],
    ['foo.bar', 'foo.bar.service'],
    ['foo.timer', 'foo.timer'],
    ['foo.path', 'foo.path'],
    ['foo.device', 'foo.device'],
    ['foo.mount', 'foo.mount'],
    ['foo.automount', 'foo.automount'],
    // fleetctl v1.0 produced foo.target.service etc. here:
    ['foo.target', 'foo.target'],
    ['x.slice', 'x.slice'],
    ['x.scope', 'x.scope'],
    ['x.swap', 'x.swap'],
    ['x.snapshot', 'x.snapshot'],
    ['x.busname', 'x.busname'],
    ['foo.Service', 'foo.Service.service'],
  ])('%s → %s', (arg, name) => {
    expect(mangleUnitName(arg)).toBe(name);
  });

  it.each([
    ['', 'unit name cannot be empty'],
    ['.', 'not a unit name: "."'],
    ['..', 'not a unit name: ".."'],
    ['a/..', 'not a unit name: "a/.."'],
    ['/', 'not a unit name: "/"'],
    ['///', 'not a unit name: "///"'],
  ])('%j is refused', (arg, message) => {
    expect(() => mangleUnitName(arg)).toThrow(expect.objectContaining({ code: 'E_UNIT_NAME', message }));
  });
});
