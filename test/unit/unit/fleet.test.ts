import { describe, expect, it } from 'vitest';
import {
  UnitFile,
  expandSpecifiers,
  fleetRequirements,
  isTruthy,
  parseMultiValue,
  parseUnitName,
  type FleetRequirements,
} from '../../../src/unit/index.js';

/** A unit whose [X-Fleet] section holds `lines`. */
function fleetUnit(...lines: string[]): UnitFile {
  return UnitFile.parse(`[Service]\nExecStart=/bin/true\n\n[X-Fleet]\n${lines.join('\n')}\n`);
}

function req(name: string, ...lines: string[]): FleetRequirements {
  return fleetRequirements(name, fleetUnit(...lines));
}

const none: FleetRequirements = {
  machineOf: [],
  metadata: {},
  conflicts: [],
  global: false,
  replaces: [],
  warnings: [],
};

describe('fleetRequirements: options and aliases', () => {
  const cases: { name: string; unit?: string; lines: string[]; expected: Partial<FleetRequirements> }[] = [
    { name: 'no [X-Fleet] section', lines: [], expected: {} },
    {
      name: 'MachineID',
      lines: ['MachineID=4d389537d3814e8d8ff5cb0d2a1d9a66'],
      expected: { machineID: '4d389537d3814e8d8ff5cb0d2a1d9a66' },
    },
    {
      name: 'short MachineID kept as written',
      lines: ['MachineID=4d389537'],
      expected: { machineID: '4d389537' },
    },
    {
      name: 'X-ConditionMachineID alias',
      lines: ['X-ConditionMachineID=abc'],
      expected: { machineID: 'abc' },
    },
    {
      name: 'X-ConditionMachineBootID legacy alias',
      lines: ['X-ConditionMachineBootID=boot'],
      expected: { machineID: 'boot' },
    },
    { name: 'MachineOf', lines: ['MachineOf=db.service'], expected: { machineOf: ['db.service'] } },
    {
      name: 'X-ConditionMachineOf alias values come first',
      lines: ['MachineOf=b.service', 'X-ConditionMachineOf=a.service'],
      expected: { machineOf: ['a.service', 'b.service'] },
    },
    {
      name: 'MachineOf is not split on whitespace (fleet) but quoted multi-values are',
      lines: ['MachineOf="a.service" "b.service"'],
      expected: { machineOf: ['a.service', 'b.service'] },
    },
    {
      name: 'MachineMetadata: same key ORs, different keys AND',
      lines: ['MachineMetadata=region=us-east-1', 'MachineMetadata="region=us-west-1" "disk=ssd"'],
      expected: { metadata: { region: ['us-east-1', 'us-west-1'], disk: ['ssd'] } },
    },
    {
      name: 'X-ConditionMachineMetadata alias',
      lines: ['X-ConditionMachineMetadata=role=web', 'MachineMetadata=role=api'],
      expected: { metadata: { role: ['web', 'api'] } },
    },
    {
      name: 'metadata values de-duplicated',
      lines: ['MachineMetadata=a=1', 'MachineMetadata=a=1'],
      expected: { metadata: { a: ['1'] } },
    },
    { name: 'Conflicts', lines: ['Conflicts=web@*.service'], expected: { conflicts: ['web@*.service'] } },
    {
      name: 'Conflicts split on whitespace (#1245)',
      lines: ['Conflicts=a.service b*.service\tc?.service'],
      expected: { conflicts: ['a.service', 'b*.service', 'c?.service'] },
    },
    {
      name: 'X-Conflicts alias, values first, repeats append',
      lines: ['Conflicts=b.service', 'X-Conflicts=a.service', 'Conflicts=c.service'],
      expected: { conflicts: ['a.service', 'b.service', 'c.service'] },
    },
    {
      name: 'quoted Conflicts values are also split',
      lines: ['Conflicts="a.service b.service" "c.service"'],
      expected: { conflicts: ['a.service', 'b.service', 'c.service'] },
    },
    { name: 'Replaces', lines: ['Replaces=old.service'], expected: { replaces: ['old.service'] } },
    {
      name: 'Replaces quoted multi-value and repeats',
      lines: ['Replaces="a.service" "b*.service"', 'Replaces=c.service'],
      expected: { replaces: ['a.service', 'b*.service', 'c.service'] },
    },
    { name: 'Global=true', lines: ['Global=true'], expected: { global: true } },
    {
      name: 'Global with MachineMetadata and Conflicts is allowed',
      lines: ['Global=true', 'MachineMetadata=a=b', 'Conflicts=x*'],
      expected: { global: true, metadata: { a: ['b'] }, conflicts: ['x*'] },
    },
    { name: 'Global last value wins', lines: ['Global=true', 'Global=false'], expected: { global: false } },
    {
      name: 'Global last value wins (other way)',
      lines: ['Global=no', 'Global=yes'],
      expected: { global: true },
    },
    { name: 'Global quoted', lines: ['Global="true"'], expected: { global: true } },
    { name: 'other sections ignored', unit: '[Unit]\nMachineID=abc\nConflicts=x\n', lines: [], expected: {} },
    {
      name: 'keys are case-sensitive',
      lines: ['machineid=abc'],
      expected: { warnings: ['unrecognized requirement in [X-Fleet] section: "machineid"'] },
    },
  ];

  it.each(cases)('$name', ({ unit, lines, expected }) => {
    const u = unit === undefined ? fleetUnit(...lines) : UnitFile.parse(unit);
    expect(fleetRequirements('app.service', u)).toEqual({ ...none, ...expected });
  });

  it('omits machineID when absent (exactOptionalPropertyTypes)', () => {
    expect('machineID' in req('app.service', 'Global=true')).toBe(false);
  });

  it('metadata is a null-prototype record, safe for any key', () => {
    const r = req('app.service', 'MachineMetadata=__proto__=x', 'MachineMetadata=constructor=y');
    expect(Object.keys(r.metadata)).toEqual(['__proto__', 'constructor']);
    expect(r.metadata['__proto__']).toEqual(['x']);
    expect(Object.getPrototypeOf(r.metadata)).toBeNull();
  });
});

describe('Global truthy values (fleet isTruthyValue, case-insensitive)', () => {
  it.each(['true', 'TRUE', 'True', 'yes', 'YES', '1', 'on', 'On', 't', 'T'])('%s is true', (v) => {
    expect(isTruthy(v)).toBe(true);
    expect(req('g.service', `Global=${v}`).global).toBe(true);
  });

  it.each(['false', '0', 'no', 'off', 'f', 'y', 'enabled', '2', ' true'])('%j is false', (v) => {
    expect(isTruthy(v)).toBe(false);
  });
});

describe('MachineID precedence', () => {
  it('MachineID beats the aliases, first value wins, with warnings', () => {
    const r = req(
      'a.service',
      'X-ConditionMachineID=old',
      'MachineID="m1" "m2"',
      'MachineID=m3',
      'X-ConditionMachineBootID=boot',
    );
    expect(r.machineID).toBe('m1');
    expect(r.warnings).toEqual([
      'MachineID has 3 values; only the first ("m1") is used',
      'X-ConditionMachineID is ignored because MachineID is set',
      'X-ConditionMachineBootID is ignored because MachineID is set',
    ]);
  });

  it('X-ConditionMachineID beats X-ConditionMachineBootID', () => {
    const r = req('a.service', 'X-ConditionMachineBootID=boot', 'X-ConditionMachineID=id');
    expect(r.machineID).toBe('id');
    expect(r.warnings).toEqual(['X-ConditionMachineBootID is ignored because X-ConditionMachineID is set']);
  });
});

describe('empty assignment resets a key (systemd list semantics; fleet kept "")', () => {
  it.each([
    [['MachineID=abc', 'MachineID='], {}],
    [['MachineID='], {}],
    [['MachineOf=a.service', 'MachineOf=', 'MachineOf=b.service'], { machineOf: ['b.service'] }],
    [['Conflicts=a*', 'Conflicts='], {}],
    [['Global=true', 'Global='], {}],
    [['MachineMetadata=a=b', 'MachineMetadata='], {}],
    [['Replaces=x.service', 'Replaces='], {}],
    // a reset only clears its own key, not the alias
    [['X-Conflicts=a*', 'Conflicts=b*', 'Conflicts='], { conflicts: ['a*'] }],
  ] as [string[], Partial<FleetRequirements>][])('%j', (lines, expected) => {
    expect(req('u.service', ...lines)).toEqual({ ...none, ...expected });
  });
});

describe('specifiers %n %N %p %i, in [X-Fleet] only', () => {
  it('expands against the unit name', () => {
    const u = fleetUnit('MachineOf=%p-data@%i.service', 'Conflicts=%p@*.service', 'MachineMetadata=name=%N');
    const r = fleetRequirements('web@8080.service', u);
    expect(r.machineOf).toEqual(['web-data@8080.service']);
    expect(r.conflicts).toEqual(['web@*.service']);
    expect(r.metadata).toEqual({ name: ['web@8080'] });
    expect(req('web@8080.service', 'Replaces=old-%n').replaces).toEqual(['old-web@8080.service']);
    // the unit file itself is untouched (systemd expands its own specifiers)
    expect(u.get('X-Fleet', 'MachineOf')).toBe('%p-data@%i.service');
  });

  it.each([
    ['foo@bar.baz.service', '%n|%N|%p|%i', 'foo@bar.baz.service|foo@bar.baz|foo|bar.baz'],
    ['plain.socket', '%n|%N|%p|%i', 'plain.socket|plain|plain|'],
    ['tpl@.timer', '%n|%N|%p|%i', 'tpl@.timer|tpl@|tpl|'],
    ['a.service', '%%n %x %H %', '%a.service %x %H %'],
  ])('%s: %s → %s', (name, value, out) => {
    expect(expandSpecifiers(value, parseUnitName(name))).toBe(out);
  });

  it('refuses an invalid unit name', () => {
    expect(() => fleetRequirements('bad', fleetUnit('Global=true'))).toThrow(
      expect.objectContaining({ code: 'E_UNIT_NAME', message: 'unit name must contain "."' }),
    );
  });
});

describe('parseMultiValue (fleet parseMultivalueLine)', () => {
  it.each([
    ['plain value', ['plain value']],
    ['"a=b" "c=d"', ['a=b', 'c=d']],
    ['"a b" "c"', ['a b', 'c']],
    ['"a"  "b"', ['a', 'b']], // fleet would add "" between them; dropped
    ['""', []],
    ['"', []],
    ['"one"', ['one']],
    ['"a" b "c"', ['a', 'b', 'c']],
    ['"a" "b', ['"a" "b']], // does not end with a quote: one value, quotes kept
    ['a "b"', ['a "b"']],
    ['"x\ty" "z"', ['x\ty', 'z']], // only spaces separate
  ])('%j → %j', (value, out) => {
    expect(parseMultiValue(value)).toEqual(out);
  });
});

describe('warnings', () => {
  it('unknown keys, once each, in fleet wording', () => {
    const r = req('w.service', 'Foo=1', 'Weight=2', 'Foo=3', 'Conflicts=x*');
    expect(r.warnings).toEqual([
      'unrecognized requirement in [X-Fleet] section: "Foo"',
      'unrecognized requirement in [X-Fleet] section: "Weight"',
    ]);
    expect(r.conflicts).toEqual(['x*']);
  });

  it('malformed metadata is ignored with a warning', () => {
    const r = req('w.service', 'MachineMetadata="region" "a=b=c" "=x" "y=" "ok=1"');
    expect(r.metadata).toEqual({ ok: ['1'] });
    expect(r.warnings).toEqual([
      'MachineMetadata value "region" ignored: expected key=value',
      'MachineMetadata value "a=b=c" ignored: expected key=value',
      'MachineMetadata value "=x" ignored: expected key=value',
      'MachineMetadata value "y=" ignored: expected key=value',
    ]);
  });

  it('invalid globs, whitespace in Replaces, invalid peer names', () => {
    const r = req('w.service', 'Conflicts=[a', 'MachineOf=peer');
    expect(r.warnings).toEqual([
      'MachineOf peer "peer" is not a valid unit name (unit name must contain "."); the unit cannot be scheduled',
      'Conflicts pattern "[a" is not a valid glob and never matches',
    ]);
    expect(req('w.service', 'Replaces=a.service b.service').warnings).toEqual([
      'Replaces pattern "a.service b.service" contains whitespace and is one pattern; quote each ("a" "b") for several',
    ]);
  });
});

describe('rejected combinations (fleet api.ValidateOptions), exact messages', () => {
  const cases: [string, string[], string][] = [
    [
      'peer matches conflict glob',
      ['MachineOf=x.service', 'Conflicts=x*'],
      'unresolvable requirements: peer "x.service" matches conflict "x*"',
    ],
    [
      'peer matches conflict exactly',
      ['MachineOf=db.service', 'Conflicts=db.service'],
      'unresolvable requirements: peer "db.service" matches conflict "db.service"',
    ],
    [
      'peer matches X-Conflicts (aliases)',
      ['X-ConditionMachineOf=db@1.service', 'X-Conflicts=db@?.service'],
      'unresolvable requirements: peer "db@1.service" matches conflict "db@?.service"',
    ],
    [
      'peer matches a later whitespace-split conflict',
      ['MachineOf=b.service', 'Conflicts=a.service [b].service'],
      'unresolvable requirements: peer "b.service" matches conflict "[b].service"',
    ],
    [
      'peer matches conflict after specifier expansion',
      ['MachineOf=%p-db.service', 'Conflicts=app-*'],
      'unresolvable requirements: peer "app-db.service" matches conflict "app-*"',
    ],
    [
      'peer matches replace glob',
      ['MachineOf=old.service', 'Replaces=o*'],
      'unresolvable requirements: peer "old.service" matches replace "o*"',
    ],
    [
      'MachineID + MachineOf',
      ['MachineID=abc', 'MachineOf=b.service'],
      'MachineID cannot be used with Peers',
    ],
    [
      'X-ConditionMachineID + X-ConditionMachineOf',
      ['X-ConditionMachineID=abc', 'X-ConditionMachineOf=b.service'],
      'MachineID cannot be used with Peers',
    ],
    [
      'X-ConditionMachineBootID + MachineOf',
      ['X-ConditionMachineBootID=abc', 'MachineOf=b.service'],
      'MachineID cannot be used with Peers',
    ],
    ['MachineID + Conflicts', ['MachineID=abc', 'Conflicts=b*'], 'MachineID cannot be used with Conflicts'],
    [
      'MachineID + X-Conflicts',
      ['MachineID=abc', 'X-Conflicts=b*'],
      'MachineID cannot be used with Conflicts',
    ],
    ['MachineID + Global', ['MachineID=abc', 'Global=yes'], 'MachineID cannot be used with Global'],
    [
      'MachineID + Replaces',
      ['MachineID=abc', 'Replaces=b.service'],
      'MachineID cannot be used with Replaces',
    ],
    ['Global + MachineOf', ['Global=1', 'MachineOf=b.service'], 'Global cannot be used with Peers'],
    ['Global + Replaces', ['Global=on', 'Replaces=b.service'], 'Global cannot be used with Replaces'],
    [
      'Conflicts + Replaces',
      ['Conflicts=a*', 'Replaces=b.service'],
      'Conflicts cannot be used with Replaces',
    ],
    // order: the first failing rule wins
    [
      'peer/conflict before MachineID rules',
      ['MachineID=abc', 'MachineOf=x.service', 'Conflicts=x*'],
      'unresolvable requirements: peer "x.service" matches conflict "x*"',
    ],
    [
      'peer/conflict before peer/replace',
      ['MachineOf=x.service', 'Conflicts=x*', 'Replaces=x*'],
      'unresolvable requirements: peer "x.service" matches conflict "x*"',
    ],
    [
      'MachineID+Peers before MachineID+Conflicts',
      ['MachineID=abc', 'MachineOf=p.service', 'Conflicts=q*'],
      'MachineID cannot be used with Peers',
    ],
    [
      'MachineID+Global before MachineID+Replaces',
      ['MachineID=abc', 'Global=true', 'Replaces=q*'],
      'MachineID cannot be used with Global',
    ],
    [
      'Global+Peers before Global+Replaces',
      ['Global=true', 'MachineOf=p.service', 'Replaces=q*'],
      'Global cannot be used with Peers',
    ],
    [
      'Global+Replaces before Conflicts+Replaces',
      ['Global=true', 'Conflicts=c*', 'Replaces=q*'],
      'Global cannot be used with Replaces',
    ],
  ];

  it.each(cases)('%s', (_name, lines, message) => {
    expect(() => req('app.service', ...lines)).toThrow(
      expect.objectContaining({ code: 'E_UNIT_OPTIONS', message }),
    );
  });

  it('details name the unit and the clashing fields', () => {
    try {
      req('app.service', 'MachineID=abc', 'Global=true');
      expect.unreachable();
    } catch (err) {
      expect(err).toMatchObject({ details: { unit: 'app.service', fields: ['MachineID', 'Global'] } });
    }
    try {
      req('app.service', 'MachineOf=x.service', 'Conflicts=x*');
      expect.unreachable();
    } catch (err) {
      expect(err).toMatchObject({ details: { unit: 'app.service', peer: 'x.service', conflict: 'x*' } });
    }
  });

  it.each([
    ['peer does not match conflict', ['MachineOf=db.service', 'Conflicts=web*']],
    ['an invalid conflict pattern never matches', ['MachineOf=[db.service', 'Conflicts=[db*']],
    ['* does not cross /', ['MachineOf=a/b.service', 'Conflicts=a*']],
    ['Global=false with MachineID', ['Global=false', 'MachineID=abc']],
    ['reset Global with MachineOf', ['Global=true', 'Global=', 'MachineOf=p.service']],
    ['MachineID with MachineMetadata', ['MachineID=abc', 'MachineMetadata=a=b']],
    [
      'Replaces with MachineMetadata and MachineOf',
      ['Replaces=old.service', 'MachineMetadata=a=b', 'MachineOf=p.service'],
    ],
  ])('accepted: %s', (_name, lines) => {
    expect(() => req('app.service', ...lines)).not.toThrow();
  });
});

describe('MachineOf naming the unit itself', () => {
  it('MachineOf=%n (or the own name) is flagged: the unit can never be scheduled', () => {
    for (const v of ['%n', 'self.service']) {
      const r = req('self.service', `MachineOf=${v}`);
      expect(r.machineOf).toEqual(['self.service']);
      expect(r.warnings).toEqual([
        'MachineOf names the unit itself ("self.service", e.g. from %n): a unit cannot wait for itself, so it can never be scheduled',
      ]);
    }
    expect(req('a.service', 'MachineOf=b.service').warnings).toEqual([]);
  });
});
