/**
 * Go's text/tabwriter as fleetctl configures it (minwidth 0, tabwidth 8, padding 1, padchar '\t'):
 * columns are aligned with TAB characters, not spaces. A column's width is its widest cell + 1,
 * rounded up to a multiple of 8; a cell is followed by as many tabs as reach that width. The last
 * cell of a line is not padded. Widths count Unicode code points, as Go counts runes.
 */
const TABWIDTH = 8;

export function tabwrite(lines: string[][]): string {
  const cols = Math.max(0, ...lines.map((l) => l.length));
  const width: number[] = [];
  for (let c = 0; c < cols - 1; c++) {
    let w = 0;
    for (const l of lines) if (c < l.length - 1) w = Math.max(w, [...l[c]!].length);
    width[c] = Math.ceil((w + 1) / TABWIDTH) * TABWIDTH;
  }
  return lines
    .map((l) =>
      l
        .map((cell, c) => {
          if (c === l.length - 1) return cell;
          const n = width[c]! - [...cell].length;
          return cell + '\t'.repeat(Math.ceil(n / TABWIDTH));
        })
        .join(''),
    )
    .map((s) => `${s}\n`)
    .join('');
}
