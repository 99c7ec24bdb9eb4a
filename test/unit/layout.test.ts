/**
 * The layout shows the architecture (issue 13's "Done when"): no import cycles between modules,
 * arrows between folders point one way (down), and every folder says what it holds (index.ts or
 * README.md) and is in the README's "What is here" table. Ports a lower folder implements (the
 * consumer's interface, imported for types only) are the one allowed upward arrow.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { cycles, folderOf, importGraph } from '../support/import-graph.js';

const SRC = join(import.meta.dirname, '../../src');
const g = importGraph(SRC);
/** Ports owned by their consumer; implementations import them for types only. */
const PORTS = new Set(['agent/unit-hooks.ts', 'daemon/subsystem.ts']);

/** Folder → folders it must never import (runtime or type). */
const FORBIDDEN: Record<string, string[]> = {
  lib: ['*'],
  unit: ['*'],
  docker: ['*'],
  systemd: ['agent', 'api', 'cli', 'container', 'daemon', 'engine', 'registry'],
  registry: ['agent', 'api', 'cli', 'container', 'daemon', 'discovery', 'docker', 'engine', 'systemd'],
  engine: ['agent', 'api', 'cli', 'container', 'daemon', 'docker'],
  agent: ['api', 'cli', 'container', 'daemon', 'dashboard', 'discovery', 'docker', 'proxy'],
};
const ALLOWED_BELOW: Record<string, string[]> = { lib: [], unit: ['lib'], docker: ['lib'] };

describe('src/ layout', () => {
  it('has no import cycle between modules, type-only imports included', () => {
    expect(cycles(g.edges.filter((e) => !e.typeOnly))).toEqual([]);
    expect(cycles(g.edges)).toEqual([]);
  });

  it('arrows between folders point one way (no folder cycle besides type arrows to ports)', () => {
    const folderEdges = g.edges
      .filter((e) => !(e.typeOnly && PORTS.has(e.to)))
      .map((e) => ({ from: folderOf(e.from), to: folderOf(e.to), typeOnly: e.typeOnly }))
      .filter((e) => e.from !== e.to);
    expect(cycles(folderEdges)).toEqual([]);
    // Imports of a port are for types only.
    expect(
      g.edges.filter((e) => PORTS.has(e.to) && folderOf(e.from) !== folderOf(e.to) && !e.typeOnly),
    ).toEqual([]);
  });

  it('no folder imports what it must not (agent ↛ api/cli/container/daemon/docker, registry ↛ agent, …)', () => {
    const bad: string[] = [];
    for (const e of g.edges) {
      const a = folderOf(e.from);
      const b = folderOf(e.to);
      if (a === b) continue;
      const rule = FORBIDDEN[a];
      if (rule?.includes('*') ? !(ALLOWED_BELOW[a] ?? []).includes(b) : rule?.includes(b))
        bad.push(`${e.from} → ${e.to}`);
      if (b === 'cli') bad.push(`${e.from} → ${e.to} (nothing imports cli/)`);
    }
    expect(bad).toEqual([]);
  });

  it('every folder opens with what it holds (index.ts or README.md) and is in the README table', () => {
    const readme = readFileSync(join(SRC, '../README.md'), 'utf8');
    const table = readme.slice(readme.indexOf('## What is here'), readme.indexOf('### The agent'));
    const folders = readdirSync(SRC).filter((f) => statSync(join(SRC, f)).isDirectory());
    expect(folders.length).toBeGreaterThan(20);
    for (const f of folders) {
      const opening = ['index.ts', 'README.md'].find((x) => existsSync(join(SRC, f, x)));
      expect(opening, `src/${f}: no index.ts or README.md`).toBeDefined();
      expect(readFileSync(join(SRC, f, opening!), 'utf8'), `src/${f}/${opening}`).toMatch(/^(\/\*\*|# )/);
      expect(table, `src/${f}/ in README "What is here"`).toContain(`\`src/${f}/`);
    }
  });
});
