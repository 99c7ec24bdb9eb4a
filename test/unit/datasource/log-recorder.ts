import type { Logger } from '../../../src/lib/log.js';

/** A Logger that keeps every line (level, message, fields) so tests can read and grep them. */
export function recorder(): Logger & { lines: string[]; text(): string } {
  const lines: string[] = [];
  const at =
    (level: string) =>
    (fields: Record<string, unknown>, msg: string): void => {
      lines.push(`${level} ${msg} ${JSON.stringify(fields)}`);
    };
  return {
    lines,
    text: () => lines.join('\n'),
    debug: at('debug'),
    info: at('info'),
    warn: at('warn'),
    error: at('error'),
  };
}
