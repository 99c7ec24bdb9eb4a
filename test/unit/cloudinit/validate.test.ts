/**
 * The validator against coreos-cloudinit's own test tables (config/validate/*_test.go) and each
 * rule's message with its exact line.
 */
import { describe, expect, it } from 'vitest';
import { formatEntry, validate, validateCloudConfig } from '../../../src/cloudinit/validate.js';

const lines = (doc: string) => validateCloudConfig(doc).map(formatEntry);

describe('validate: dispatch on the user-data', () => {
  it.each([
    ['', []],
    ['#!/bin/bash\necho hey', []],
    ['{"ignitionVersion":1}', []],
    ['{"ignition":{"version":"3.3.0"}}', []],
    ['{}', ['line 1: error: must be "#cloud-config" or begin with "#!"']],
    [
      'Content-Type: multipart/mixed; boundary="x"\n',
      ['line 1: error: must be "#cloud-config" or begin with "#!"'],
    ],
    ['#cloud-config   \nhostname: a\n', []],
    ['#cloud-configX\n', ['line 1: error: must be "#cloud-config" or begin with "#!"']],
  ])('%j', (doc, want) => {
    expect(validate(doc).map(formatEntry)).toEqual(want);
  });
});

describe('validate: coreos-cloudinit typing', () => {
  it.each([
    ['write_files:\n  - permissions: 0744', []],
    ["write_files:\n  - permissions: '0744'", []],
    ['write_files:\n  - permissions: 744', []],
    ["write_files:\n  - permissions: '744'", []],
    ['write_files:\n  - permissions: 644', []],
    ['coreos:\n  update:\n    reboot-strategy: off', []],
    ['coreos:\n  update:\n    reboot-strategy: false', ['line 3: error: invalid value false']],
    ['coreos:\n  locksmith:\n    window_start: 14:00', []],
    ['coreos:\n  locksmith:\n    window_start: Thu 04:00\n    window_length: 1h', []],
    ['coreos:\n  locksmith:\n    window_start: 25:00', ['line 3: error: invalid value 25:00']],
    [
      'coreos:\n  fleet:\n    verbosity: 2',
      ['line 2: warning: deprecated key "fleet" (fleet is no longer shipped in Container Linux)'],
    ],
    ['hostname: true', []],
    ['hostname: 4', []],
    ['hostname: host', []],
    ['ssh_authorized_keys:\n  - key', []],
    ['users:\n  - name: good', []],
    ['coreos:\n  units:\n    - enable: true', []],
    ['coreos:\n  units:\n    - enable: yes', []],
  ])('%j', (doc, want) => {
    expect(lines(doc)).toEqual(want);
  });
});

describe('validate: every rule with its line', () => {
  it('checkDiscoveryUrl: coreos.etcd.discovery only', () => {
    expect(
      lines('coreos:\n  etcd:\n    discovery: https://discovery.etcd.io/00000000000000000000000000000000'),
    ).toEqual(['line 2: warning: deprecated key "etcd" (etcd is no longer shipped in Container Linux)']);
    expect(lines('coreos:\n  etcd:\n    discovery: disco')).toEqual([
      'line 3: warning: discovery URL is not valid',
      'line 2: warning: deprecated key "etcd" (etcd is no longer shipped in Container Linux)',
    ]);
    expect(lines('coreos:\n  etcd2:\n    discovery: disco')).toEqual([
      'line 2: warning: deprecated key "etcd2" (etcd2 is no longer shipped in Container Linux)',
    ]);
  });

  it('checkEncoding: the content line', () => {
    expect(lines('write_files:\n  - encoding: base64\n    content: aGVsbG8K')).toEqual([]);
    expect(lines('write_files:\n  - content: !!binary aGVsbG8K')).toEqual([]);
    expect(lines('write_files:\n  - encoding: base64\n    content: !!binary aGVsbG8K')).toEqual([
      'line 3: error: content cannot be decoded as "base64"',
    ]);
    expect(lines('write_files:\n  - encoding: base64\n    content: !!binary YUdWc2JHOEsK')).toEqual([]);
    expect(
      lines('write_files:\n  - encoding: gzip\n    content: !!binary H4sIAOC3tVQAA8tIzcnJ5wIAIDA6NgYAAAA='),
    ).toEqual([]);
    expect(
      lines('write_files:\n  - encoding: gzip+base64\n    content: H4sIAOC3tVQAA8tIzcnJ5wIAIDA6NgYAAAA='),
    ).toEqual([]);
    expect(lines('write_files:\n  - encoding: gzip\n    content: not gzip')).toEqual([
      'line 3: error: content cannot be decoded as "gzip"',
    ]);
    expect(lines('write_files:\n  - encoding: custom\n    content: hello')).toEqual([
      'line 3: error: content cannot be decoded as "custom"',
      'line 2: error: invalid value custom',
    ]);
  });

  it('checkStructure: unrecognized, deprecated and incorrect types', () => {
    expect(lines('test:')).toEqual(['line 1: warning: unrecognized key "test"']);
    expect(lines('coreos:\n  flannel:\n    bad:')).toEqual(['line 3: warning: unrecognized key "bad"']);
    expect(lines('coreos:\n  flannel:\n    interface: good')).toEqual([]);
    expect(lines('coreos:\n  etcd:\n    proxy: hi')).toEqual([
      'line 2: warning: deprecated key "etcd" (etcd is no longer shipped in Container Linux)',
      'line 3: warning: deprecated key "proxy" (etcd2 options no longer work for etcd)',
    ]);
    expect(lines('users:\n  - name: a\n    coreos-ssh-import-github: a')).toEqual([
      'line 3: warning: deprecated key "coreos_ssh_import_github" (trying to fetch from a remote endpoint introduces too many intermittent errors)',
    ]);
    expect(lines("coreos:\n  units:\n    - enable: 'true'")).toEqual([
      'line 3: warning: incorrect type for "enable" (want bool)',
    ]);
    expect(lines('users:\n  - name: a\n    groups: wheel')).toEqual([
      'line 3: warning: incorrect type for "groups" (want []string)',
    ]);
    expect(lines('coreos: yes')).toEqual(['line 1: warning: incorrect type for "coreos" (want struct)']);
    expect(lines('users: bob')).toEqual(['line 1: warning: incorrect type for "users" (want []struct)']);
    expect(lines('coreos:\n  fleet:\n    verbosity: high')).toEqual([
      'line 2: warning: deprecated key "fleet" (fleet is no longer shipped in Container Linux)',
      'line 3: warning: incorrect type for "verbosity" (want int)',
    ]);
    expect(lines('ssh_authorized_keys:\n  - a\n  - [b]')).toEqual([
      'line 3: warning: incorrect type for "ssh_authorized_keys[1]" (want string)',
    ]);
    expect(lines('hostname:')).toEqual(['line 1: warning: incorrect type for "hostname" (want string)']);
  });

  it('checkValidity: invalid values (errors)', () => {
    expect(lines('coreos:\n  units:\n    - command: start\n    - name: stop')).toEqual([]);
    expect(lines('coreos:\n  units:\n    - command: lol')).toEqual(['line 3: error: invalid value lol']);
    expect(lines('coreos:\n  update:\n    reboot_strategy: always')).toEqual([
      'line 3: error: invalid value always',
    ]);
    expect(lines('write_files:\n  - path: /a\n    permissions: 0x1a4')).toEqual([
      'line 3: error: invalid value 0x1a4',
    ]);
    expect(lines("write_files:\n  - path: /a\n    permissions: '0999'")).toEqual([
      'line 3: error: invalid value 0999',
    ]);
    expect(lines('unknown: hi')).toEqual(['line 1: warning: unrecognized key "unknown"']);
  });

  it('checkWriteFiles: /usr is read-only (path.Dir cleaned)', () => {
    expect(lines('write_files:\n  - path: /valid')).toEqual([]);
    expect(lines('write_files:\n  - path: /tmp/usr/valid')).toEqual([]);
    expect(lines('write_files:\n  - path: /usr/invalid')).toEqual([
      'line 2: error: file cannot be written to a read-only filesystem',
    ]);
    expect(lines('write-files:\n  - path: /tmp/../usr/invalid')).toEqual([
      'line 2: error: file cannot be written to a read-only filesystem',
    ]);
  });

  it('checkWriteFilesUnderCoreos: info', () => {
    expect(lines('coreos:\n  write-files:\n    - path: /hyphen')).toEqual([
      'line 2: warning: unrecognized key "write_files"',
      "line 2: info: write_files doesn't belong under coreos",
    ]);
  });

  it('YAML errors carry their line', () => {
    expect(lines('#cloud-config\ncoreos:\n  units:\n  - name: a\n   bad: b\n')).toEqual([
      "line 5: error: did not find expected '-' indicator",
    ]);
    expect(lines('#cloud-config\nhostname: a\n  users: b\n')).toEqual([
      'line 3: error: mapping values are not allowed in this context',
    ]);
    expect(lines('#cloud-config\na:\n  b: 1\n c: 2\n')).toEqual(['line 4: error: did not find expected key']);
    expect(lines('#cloud-config\n- a\n')).toEqual([
      'line 2: error: cannot unmarshal !!seq into map[interface {}]interface {}',
    ]);
  });

  it('lines are precise in a long document (the header counts)', () => {
    const doc = [
      '#cloud-config',
      'hostname: a',
      'write_files:',
      '  - path: /etc/a',
      '    content: |',
      '      bogus: 1',
      '      hostname: b',
      '  - path: /etc/b',
      '    bogus: 2',
      'coreos:',
      '  units:',
      '    - name: x.service',
      '      command: nope',
    ].join('\n');
    expect(lines(doc)).toEqual([
      'line 9: warning: unrecognized key "bogus"',
      'line 13: error: invalid value nope',
    ]);
  });
});
