import { describe, expect, it } from 'vitest';
import { FlotillaError } from '../../../src/lib/errors.js';
import { UnitFile, type UnitOption } from '../../../src/unit/index.js';

/** Deterministic PRNG (mulberry32) so failures reproduce. */
function rng(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// Fragments chosen to hit every syntax rule: continuations, comments, blanks, quotes, brackets.
const FRAGMENTS = [
  '[Unit]',
  '[Service]',
  '[X-Fleet]',
  '[ Odd ]',
  'Description',
  'ExecStart',
  '=',
  '==',
  ' ',
  '\t',
  '\\',
  '\\\\',
  '#',
  ';',
  '"',
  "'",
  'a b',
  'é',
  '☃',
  '%i',
  '[',
  ']',
  '\u00a0',
  'x',
  'Key',
  '\r',
];

function randomText(next: () => number, maxParts: number): string {
  let s = '';
  const parts = Math.floor(next() * (maxParts + 1));
  for (let j = 0; j < parts; j++) s += FRAGMENTS[Math.floor(next() * FRAGMENTS.length)] ?? '';
  return s;
}

const NAMES = ['Description', 'ExecStart', 'After', 'Some Name', 'X'];
const SECTIONS = ['Unit', 'Service', 'X-Fleet', ' Odd '];

function randomUnit(next: () => number): string {
  const lines: string[] = [];
  const n = 1 + Math.floor(next() * 12);
  for (let i = 0; i < n; i++) {
    const kind = next();
    if (kind < 0.55) lines.push(`${NAMES[Math.floor(next() * NAMES.length)]}=${randomText(next, 5)}`);
    else if (kind < 0.65) lines.push(`${next() < 0.5 ? '#' : '  ;'}${randomText(next, 3)}`);
    else if (kind < 0.75) lines.push(`[${SECTIONS[Math.floor(next() * SECTIONS.length)]}]`);
    else if (kind < 0.85) lines.push(next() < 0.5 ? '' : ' \t ');
    else lines.push(randomText(next, 5));
  }
  return lines.join(next() < 0.2 ? '\r\n' : '\n');
}

/** `options` regrouped by section in first-seen order, as the normal form lists them. */
function grouped(options: readonly UnitOption[]): UnitOption[] {
  const order = [...new Set(options.map((o) => o.section))];
  return order.flatMap((section) => options.filter((o) => o.section === section));
}

describe('round-trip stability (property, seeded)', () => {
  it('serialize(parse(serialize(parse(x)))) === serialize(parse(x)) whenever x parses', () => {
    const next = rng(1234);
    let parsed = 0;
    for (let i = 0; i < 5000; i++) {
      const text = '[Unit]\n' + randomUnit(next);
      let once: UnitFile;
      try {
        once = UnitFile.parse(text);
      } catch (err) {
        expect(err, JSON.stringify(text)).toBeInstanceOf(FlotillaError);
        expect((err as FlotillaError).code).toBe('E_UNIT_PARSE');
        continue;
      }
      parsed++;
      const twice = UnitFile.parse(once.serialize());
      expect(twice.serialize(), JSON.stringify(text)).toBe(once.serialize());
      expect(twice.options, JSON.stringify(text)).toEqual(grouped(once.options));
      // every parsed unit is also acceptable to fromOptions, with the same normal form
      expect(UnitFile.fromOptions([...once.options]).hash()).toBe(once.hash());
    }
    expect(parsed).toBeGreaterThan(1000);
  });

  it('parse(fromOptions(o).serialize()) gives back o whenever fromOptions accepts o', () => {
    const next = rng(99);
    const pick = (list: string[]): string =>
      next() < 0.7 ? (list[Math.floor(next() * list.length)] ?? '') : randomText(next, 3);
    let accepted = 0;
    for (let i = 0; i < 5000; i++) {
      const options: UnitOption[] = Array.from({ length: 1 + Math.floor(next() * 4) }, () => ({
        section: pick(SECTIONS),
        name: pick(NAMES),
        value: randomText(next, 4),
      }));
      let u: UnitFile;
      try {
        u = UnitFile.fromOptions(options);
      } catch (err) {
        expect((err as FlotillaError).code).toBe('E_UNIT_PARSE');
        continue;
      }
      accepted++;
      expect(UnitFile.parse(u.serialize()).options, JSON.stringify(options)).toEqual(grouped(options));
    }
    expect(accepted).toBeGreaterThan(200);
  });
});
