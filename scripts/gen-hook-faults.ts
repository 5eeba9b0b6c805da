// Writes scripts/native/berth_faults.h, the causes berth-hook (scripts/native/berth-hook.c)
// begins a node fault's drain reason with, from the one table in services/shared/fault-class.ts:
// `npm run gen`, or `node --import tsx scripts/gen-hook-faults.ts`. Checked in like
// berth_options.h, so scripts/build-native.sh needs gcc alone; test/unit/berth-hook.test.ts
// fails when it is not what this writes.
import path from 'node:path';
import { cString as quote, writeHeaderIfMain } from './c-header';
import { FAULTS, faultCause } from '../services/shared/fault-class';

export const FAULTS_HEADER_PATH = path.join(import.meta.dirname, 'native', 'berth_faults.h');

const cString = (s: string): string => quote(s, 'gen-hook-faults');

export function renderFaultsHeader(): string {
  const rows = Object.entries(FAULTS).filter(([, e]) => e.cause !== undefined).map(([code, e]) => `    { ${cString(code)}, ${cString(e.cause!)} }, \\`);
  return [
    '/* Generated from services/shared/fault-class.ts by scripts/gen-hook-faults.ts; do not edit:',
    ' * change the table there and run `npm run gen`. */',
    '#ifndef BERTH_FAULTS_H',
    '#define BERTH_FAULTS_H',
    '',
    '/* a node fault\'s cause by berth\'s error code: the drain reason begins with it */',
    '#define BERTH_FAULT_CAUSES { \\',
    ...rows,
    '}',
    `#define BERTH_FAULT_DEFAULT_CAUSE ${cString(faultCause(undefined))}`,
    '',
    '#endif',
    '',
  ].join('\n');
}

writeHeaderIfMain(import.meta.url, FAULTS_HEADER_PATH, 'gen-hook-faults', renderFaultsHeader);
