/**
 * The small XML subset Omaha v3 speaks, both ways: `xmlElement` builds a document with every
 * attribute value escaped (no string from input is ever spliced into markup), and `parseXml` reads
 * one strictly — elements, attributes, comments, an optional `<?xml …?>` prolog, the five named
 * entities and numeric references. A DOCTYPE, CDATA or any other construct is an error naming the
 * line, so no entity expansion or external reference can happen.
 */
export interface XmlNode {
  name: string;
  attrs: Record<string, string>;
  children: XmlNode[];
  /** 1-based line of the start tag (errors name it). */
  line: number;
}

export class XmlError extends Error {
  constructor(
    message: string,
    readonly line: number,
  ) {
    super(`line ${line}: ${message}`);
  }
}

const NAME = /^[A-Za-z_][A-Za-z0-9_.:-]*$/;

export function escapeAttr(v: string): string {
  return v.replace(/[&<>"'\r\n\t]/g, (c) =>
    c === '&'
      ? '&amp;'
      : c === '<'
        ? '&lt;'
        : c === '>'
          ? '&gt;'
          : c === '"'
            ? '&quot;'
            : c === "'"
              ? '&apos;'
              : `&#${c.charCodeAt(0)};`,
  );
}

export interface XmlBuild {
  name: string;
  attrs?: Record<string, string | number | undefined>;
  children?: XmlBuild[];
}

/** Serialise (attributes in the given order; undefined ones left out). */
export function xmlElement(e: XmlBuild, indent = ''): string {
  if (!NAME.test(e.name)) throw new Error(`invalid XML element name ${JSON.stringify(e.name)}`);
  let s = `${indent}<${e.name}`;
  for (const [k, v] of Object.entries(e.attrs ?? {})) {
    if (v === undefined) continue;
    if (!NAME.test(k)) throw new Error(`invalid XML attribute name ${JSON.stringify(k)}`);
    s += ` ${k}="${escapeAttr(String(v))}"`;
  }
  const kids = e.children ?? [];
  if (kids.length === 0) return `${s}/>`;
  return `${s}>\n${kids.map((k) => xmlElement(k, `${indent}  `)).join('\n')}\n${indent}</${e.name}>`;
}

function decode(raw: string, line: number): string {
  return raw.replace(/&([^;&\s]{0,10});?/g, (m, ent: string) => {
    if (!m.endsWith(';')) throw new XmlError(`a bare "&" (write &amp;)`, line);
    const named: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" };
    if (ent in named) return named[ent]!;
    const num = /^#(\d{1,7})$/.exec(ent) ?? /^#x([0-9a-fA-F]{1,6})$/.exec(ent);
    if (num) {
      const cp = ent[1] === 'x' ? parseInt(num[1]!, 16) : Number(num[1]);
      if (cp > 0 && cp <= 0x10ffff) return String.fromCodePoint(cp);
    }
    throw new XmlError(`unknown entity &${ent};`, line);
  });
}

/** Parse a whole document; the root element is returned. */
export function parseXml(text: string): XmlNode {
  let i = 0;
  let line = 1;
  const adv = (n: number) => {
    for (let k = 0; k < n; k++) if (text.charCodeAt(i + k) === 10) line++;
    i += n;
  };
  const skipWs = () => {
    while (i < text.length && /\s/.test(text[i]!)) adv(1);
  };
  const skipMisc = () => {
    for (;;) {
      skipWs();
      if (text.startsWith('<!--', i)) {
        const end = text.indexOf('-->', i + 4);
        if (end < 0) throw new XmlError('unterminated comment', line);
        adv(end + 3 - i);
      } else return;
    }
  };
  if (text.charCodeAt(0) === 0xfeff) i = 1;
  skipWs();
  if (text.startsWith('<?xml', i)) {
    const end = text.indexOf('?>', i);
    if (end < 0) throw new XmlError('unterminated <?xml ?> declaration', line);
    adv(end + 2 - i);
  }
  skipMisc();
  if (text.startsWith('<!', i)) throw new XmlError('DOCTYPE and other declarations are not accepted', line);
  const stack: XmlNode[] = [];
  let root: XmlNode | undefined;
  while (i < text.length) {
    if (text[i] !== '<') {
      // Text content: Omaha carries none we read; it must not sit outside the root.
      const next = text.indexOf('<', i);
      const chunk = text.slice(i, next < 0 ? text.length : next);
      if (stack.length === 0 && chunk.trim() !== '')
        throw new XmlError('text outside the root element', line);
      decode(chunk, line);
      adv(chunk.length);
      continue;
    }
    if (text.startsWith('<!--', i)) {
      const end = text.indexOf('-->', i + 4);
      if (end < 0) throw new XmlError('unterminated comment', line);
      adv(end + 3 - i);
      continue;
    }
    if (text.startsWith('<!', i) || text.startsWith('<?', i))
      throw new XmlError('CDATA, DOCTYPE and processing instructions are not accepted', line);
    if (text.startsWith('</', i)) {
      const m = /^<\/([A-Za-z_][A-Za-z0-9_.:-]*)\s*>/.exec(text.slice(i, i + 200));
      if (!m) throw new XmlError('malformed end tag', line);
      const open = stack.pop();
      if (!open) throw new XmlError(`end tag </${m[1]}> without a start tag`, line);
      if (open.name !== m[1])
        throw new XmlError(`end tag </${m[1]}> does not match <${open.name}> (line ${open.line})`, line);
      adv(m[0].length);
      if (stack.length === 0) {
        skipMisc();
        if (i < text.length) throw new XmlError('content after the root element', line);
      }
      continue;
    }
    if (root && stack.length === 0) throw new XmlError('a second root element', line);
    const nm = /^<([A-Za-z_][A-Za-z0-9_.:-]*)/.exec(text.slice(i, i + 200));
    if (!nm) throw new XmlError('malformed start tag', line);
    const node: XmlNode = { name: nm[1]!, attrs: {}, children: [], line };
    const parent = stack[stack.length - 1];
    let selfClosed = false;
    adv(nm[0].length);
    for (;;) {
      const before = i;
      skipWs();
      if (text.startsWith('/>', i)) {
        adv(2);
        selfClosed = true;
        break;
      }
      if (text[i] === '>') {
        adv(1);
        break;
      }
      if (i === before) throw new XmlError(`<${node.name}>: expected whitespace, ">" or "/>"`, line);
      const am = /^([A-Za-z_][A-Za-z0-9_.:-]*)\s*=\s*("([^"<]*)"|'([^'<]*)')/.exec(text.slice(i, i + 70000));
      if (!am) throw new XmlError(`<${node.name}>: malformed attribute`, line);
      const key = am[1]!;
      if (Object.hasOwn(node.attrs, key))
        throw new XmlError(`<${node.name}>: attribute ${key} appears twice`, line);
      const at = line;
      adv(am[0].length);
      node.attrs[key] = decode(am[3] ?? am[4] ?? '', at);
    }
    parent?.children.push(node);
    if (!root) root = node;
    if (!selfClosed) stack.push(node);
    else if (stack.length === 0) {
      // a self-closed root
      skipMisc();
      if (i < text.length) throw new XmlError('content after the root element', line);
    }
  }
  if (!root) throw new XmlError('no root element', line);
  if (stack.length > 0) throw new XmlError(`<${stack[stack.length - 1]!.name}> is never closed`, line);
  return root;
}
