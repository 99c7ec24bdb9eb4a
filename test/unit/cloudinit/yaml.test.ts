import { describe, expect, it } from 'vitest';
import { parseYaml, resolvePlain, type CcNode } from '../../../src/cloudinit/yaml.js';

function value(doc: string, key: string): CcNode {
  const r = parseYaml(doc);
  expect(r.error).toBeUndefined();
  const e = r.root!.entries!.find((x) => x.key === key);
  if (!e) throw new Error(`no key ${key}`);
  return e.node;
}

describe('YAML typing as go-yaml v1 (coreos-cloudinit)', () => {
  it.each([
    ['off', 'bool', false],
    ['on', 'bool', true],
    ['yes', 'bool', true],
    ['No', 'bool', false],
    ['y', 'bool', true],
    ['n', 'bool', false],
    ['TRUE', 'bool', true],
    ['0744', 'int', 0o744],
    ['0644', 'int', 420],
    ['644', 'int', 644],
    ['0x1f', 'int', 31],
    ['1_000', 'int', 1000],
    ['-12', 'int', -12],
    ['08', 'float64', 8],
    ['1.5', 'float64', 1.5],
    ['1e3', 'float64', 1000],
    ['.inf', 'float64', Infinity],
    ['~', 'null', null],
    ['null', 'null', null],
    ['14:00', 'string', '14:00'],
    ['1:30:00', 'string', '1:30:00'],
    ['2001-12-14', 'string', '2001-12-14'],
    ['etcd-lock', 'string', 'etcd-lock'],
    ['$private_ipv4:2379', 'string', '$private_ipv4:2379'],
  ])('plain %s is %s %s', (text, kind, v) => {
    expect(resolvePlain(text)).toEqual({ kind, value: v });
  });

  it('keeps the scalar text a string field receives: off stays "off", 0744 stays "0744"', () => {
    const doc = '#cloud-config\nreboot: off\nperm: 0744\nwhen: 14:00\n';
    expect(value(doc, 'reboot')).toMatchObject({ kind: 'bool', value: false, text: 'off', line: 2 });
    expect(value(doc, 'perm')).toMatchObject({ kind: 'int', value: 484, text: '0744', line: 3 });
    expect(value(doc, 'when')).toMatchObject({ kind: 'string', value: '14:00', line: 4 });
  });

  it('quoted and block scalars are strings; explicit tags win', () => {
    const doc = '#cloud-config\na: "off"\nb: \'0744\'\nc: |\n  on\nd: !!str 12\ne: !!int "12"\n';
    expect(value(doc, 'a')).toMatchObject({ kind: 'string', value: 'off' });
    expect(value(doc, 'b')).toMatchObject({ kind: 'string', value: '0744' });
    expect(value(doc, 'c')).toMatchObject({ kind: 'string', value: 'on\n', line: 4 });
    expect(value(doc, 'd')).toMatchObject({ kind: 'string', value: '12' });
    expect(value(doc, 'e')).toMatchObject({ kind: 'int', value: 12 });
  });

  it('decodes !!binary into bytes', () => {
    const n = value('#cloud-config\nb: !!binary aGVsbG8K\n', 'b');
    expect(n.binary?.toString()).toBe('hello\n');
  });

  it('gives lines of keys and of sequence items, counting the header', () => {
    const r = parseYaml('#cloud-config\nusers:\n  - name: a\n\n  - name: b\n    groups: [x]\n');
    const users = r.root!.entries![0]!.node;
    expect(users.line).toBe(2);
    expect(users.items!.map((i) => i.line)).toEqual([3, 5]);
    expect(users.items![1]!.entries!.map((e) => e.node.line)).toEqual([5, 6]);
  });

  it('resolves aliases and allows duplicate keys (go-yaml did)', () => {
    const r = parseYaml('a: &x off\nb: *x\na: 2\n');
    expect(r.error).toBeUndefined();
    expect(r.root!.entries!.map((e) => [e.key, e.node.text])).toEqual([
      ['a', 'off'],
      ['b', 'off'],
      ['a', '2'],
    ]);
  });

  it.each([
    ['\t', 1, 'found character that cannot start any token'],
    ['a:\na', 2, "could not find expected ':'"],
    ['#hello\na:\na', 3, "could not find expected ':'"],
    ['a:\n\tb: 1', 2, 'found character that cannot start any token'],
    ['a: "x', 1, 'found unexpected end of stream'],
  ])('syntax error in %j: line %d, %s', (doc, line, message) => {
    expect(parseYaml(doc).error).toEqual({ line, message });
  });

  it('a tab inside a block scalar is content, not an error', () => {
    expect(parseYaml('a: |\n  x\n  \ty\n').error).toBeUndefined();
  });
});
