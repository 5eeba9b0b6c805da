// A strict JSON reader (RFC 8259, nothing more) that keeps what JSON.parse throws away:
// every key of an object in order, duplicates included, with the line it is on, and each
// number's source text. Policy files need the duplicates to refuse them and the lines to
// point at mistakes; Docker request bodies need them to be read the way dockerd's Go decoder
// reads them (body.ts). Anything JSON.parse would refuse is refused here too, and so
// are comments, trailing commas and text after the value.

export type JsonNode =
  | { kind: 'object'; entries: JsonEntry[]; line: number }
  | { kind: 'array'; items: JsonNode[]; line: number }
  | { kind: 'string'; value: string; line: number }
  | { kind: 'number'; value: number; raw: string; line: number }
  | { kind: 'boolean'; value: boolean; line: number }
  | { kind: 'null'; line: number };

export interface JsonEntry {
  key: string;
  value: JsonNode;
  line: number;
}

/** outside the catalogue: internal to the policy: parse-policy.ts words it for the operator, and a Docker body that does not parse is refused by the AuthZ plugin with its own message (dockerd's protocol has no codes) */
export class JsonSyntaxError extends Error {
  override readonly name = 'JsonSyntaxError';
  constructor(readonly why: string, readonly line: number, readonly column: number) {
    super(`${why} at line ${line} column ${column}`);
  }
}

/** dockerd's decoder gives up at 10000 levels; nothing legitimate comes near 512. */
const MAX_DEPTH = 512;

class Reader {
  private pos = 0;
  private line = 1;
  private lineStart = 0;

  constructor(private readonly text: string) {}

  fail(why: string): never {
    throw new JsonSyntaxError(why, this.line, this.pos - this.lineStart + 1);
  }

  skipSpace(): void {
    for (;;) {
      const c = this.text.charCodeAt(this.pos);
      if (c === 0x20 || c === 0x09 || c === 0x0d) this.pos++;
      else if (c === 0x0a) {
        this.pos++;
        this.line++;
        this.lineStart = this.pos;
      } else return;
    }
  }

  atEnd(): boolean {
    return this.pos >= this.text.length;
  }

  value(depth: number): JsonNode {
    if (depth > MAX_DEPTH) this.fail(`nested deeper than ${MAX_DEPTH} levels`);
    this.skipSpace();
    const line = this.line;
    const c = this.text[this.pos];
    switch (c) {
      case '{':
        return this.object(depth);
      case '[':
        return this.array(depth);
      case '"':
        return { kind: 'string', value: this.string(), line };
      case 't':
        this.literal('true');
        return { kind: 'boolean', value: true, line };
      case 'f':
        this.literal('false');
        return { kind: 'boolean', value: false, line };
      case 'n':
        this.literal('null');
        return { kind: 'null', line };
      case undefined:
        return this.fail('unexpected end of text, a value was expected');
      default:
        if (c === '-' || (c >= '0' && c <= '9')) return this.number();
        return this.fail(`unexpected character ${JSON.stringify(c)}, a value was expected`);
    }
  }

  private literal(word: string): void {
    if (this.text.startsWith(word, this.pos)) this.pos += word.length;
    else this.fail(`unexpected text, '${word}' was expected`);
  }

  private number(): JsonNode {
    const line = this.line;
    const m = /^-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/.exec(this.text.slice(this.pos, this.pos + 400));
    if (!m) this.fail('malformed number');
    const raw = m[0];
    if (raw.length === 400) this.fail('number longer than 400 characters');
    this.pos += raw.length;
    const next = this.text[this.pos];
    if (next !== undefined && /[0-9A-Za-z.+-]/.test(next)) this.fail('malformed number');
    return { kind: 'number', value: Number(raw), raw, line };
  }

  private string(): string {
    this.pos++; // opening quote
    let out = '';
    for (;;) {
      const c = this.text[this.pos];
      if (c === undefined) this.fail('unterminated string');
      if (c === '"') {
        this.pos++;
        return out;
      }
      if (c === '\\') {
        const e = this.text[this.pos + 1];
        this.pos += 2;
        switch (e) {
          case '"': out += '"'; break;
          case '\\': out += '\\'; break;
          case '/': out += '/'; break;
          case 'b': out += '\b'; break;
          case 'f': out += '\f'; break;
          case 'n': out += '\n'; break;
          case 'r': out += '\r'; break;
          case 't': out += '\t'; break;
          case 'u': {
            const hex = this.text.slice(this.pos, this.pos + 4);
            if (!/^[0-9A-Fa-f]{4}$/.test(hex)) this.fail('malformed \\u escape');
            out += String.fromCharCode(parseInt(hex, 16));
            this.pos += 4;
            break;
          }
          default:
            this.fail(`invalid escape \\${e ?? ''}`);
        }
        continue;
      }
      if (c.charCodeAt(0) < 0x20) this.fail('control character in string');
      out += c;
      this.pos++;
    }
  }

  private object(depth: number): JsonNode {
    const line = this.line;
    this.pos++;
    const entries: JsonEntry[] = [];
    this.skipSpace();
    if (this.text[this.pos] === '}') {
      this.pos++;
      return { kind: 'object', entries, line };
    }
    for (;;) {
      this.skipSpace();
      if (this.text[this.pos] !== '"') this.fail('a key in double quotes was expected');
      const keyLine = this.line;
      const key = this.string();
      this.skipSpace();
      if (this.text[this.pos] !== ':') this.fail(`':' was expected after key ${JSON.stringify(key)}`);
      this.pos++;
      entries.push({ key, value: this.value(depth + 1), line: keyLine });
      this.skipSpace();
      const c = this.text[this.pos];
      if (c === ',') {
        this.pos++;
        continue;
      }
      if (c === '}') {
        this.pos++;
        return { kind: 'object', entries, line };
      }
      this.fail("',' or '}' was expected");
    }
  }

  private array(depth: number): JsonNode {
    const line = this.line;
    this.pos++;
    const items: JsonNode[] = [];
    this.skipSpace();
    if (this.text[this.pos] === ']') {
      this.pos++;
      return { kind: 'array', items, line };
    }
    for (;;) {
      items.push(this.value(depth + 1));
      this.skipSpace();
      const c = this.text[this.pos];
      if (c === ',') {
        this.pos++;
        continue;
      }
      if (c === ']') {
        this.pos++;
        return { kind: 'array', items, line };
      }
      this.fail("',' or ']' was expected");
    }
  }
}

/** Parses exactly one JSON value; white space around it is allowed, anything else is not. */
export function parseJson(text: string): JsonNode {
  const r = new Reader(text);
  const node = r.value(0);
  r.skipSpace();
  if (!r.atEnd()) r.fail('unexpected text after the JSON value');
  return node;
}

/** The plain JavaScript value of a node (for the last of duplicate keys, as JSON.parse does). */
export function toPlain(node: JsonNode): unknown {
  switch (node.kind) {
    case 'object': {
      const out: Record<string, unknown> = {};
      // defineProperty, so that a key named __proto__ stays a key
      for (const e of node.entries) Object.defineProperty(out, e.key, { value: toPlain(e.value), enumerable: true, writable: true, configurable: true });
      return out;
    }
    case 'array':
      return node.items.map(toPlain);
    case 'null':
      return null;
    default:
      return node.value;
  }
}
