// Runs the unit tests (or the test files given) with a TMPDIR of their own, removed at the end:
// the tests make their scratch directories with mkdtemp under os.tmpdir(), and left in /tmp
// they came to thousands (berth-unit-*, berth-sc-*, ...) on a machine that runs them often.
//   npm run test:unit [-- test/unit/X.test.ts ...]
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const files = process.argv.slice(2).filter((a) => !a.startsWith('-'));
const flags = process.argv.slice(2).filter((a) => a.startsWith('-'));
const tests = files.length ? files : readdirSync('test/unit').filter((f) => f.endsWith('.test.ts')).sort().map((f) => path.join('test/unit', f));
const tmp = mkdtempSync(path.join(os.tmpdir(), 'berth-test-'));
// like /tmp: tests that run something as another user must be able to reach what they put here
chmodSync(tmp, 0o1777);
let status = 1;
try {
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--test', ...flags, ...tests], { stdio: 'inherit', env: { ...process.env, TMPDIR: tmp } });
  status = r.status ?? 1;
  if (r.signal) console.error(`test-unit: the test run ended by ${r.signal}`);
} finally {
  rmSync(tmp, { recursive: true, force: true });
}
process.exit(status);
