// What the generators of C headers from TypeScript tables share (gen-spank-options.ts,
// gen-hook-faults.ts): C string literals, and writing the header when run as a script.
import { writeFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';

/** S as a C string literal; only printable ASCII, so the header needs no escapes beyond \\ and " */
export function cString(s: string, generator: string): string {
  if (!/^[\x20-\x7e]*$/.test(s)) throw new Error(`${generator}: ${JSON.stringify(s)} has a character outside printable ASCII`);
  return `"${s.replace(/[\\"]/g, (c) => `\\${c}`)}"`;
}

/** Writes RENDER()'s header to FILE when MODULE_URL is the script node was asked to run. */
export function writeHeaderIfMain(moduleUrl: string, file: string, generator: string, render: () => string): void {
  if (moduleUrl !== pathToFileURL(process.argv[1] ?? '').href) return;
  writeFileSync(file, render());
  console.log(`${generator}: wrote ${file}`);
}
