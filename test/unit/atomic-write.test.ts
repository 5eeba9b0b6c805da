// The one atomic file replacement: old or new content, never half; the mode whatever the umask;
// nothing left beside the file.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { writeFileAtomic } from '../../services/shared/atomic-write';

describe('writeFileAtomic', () => {
  it('replaces the file whole, with the mode asked for, and leaves no temporary file', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'berth-atomic-'));
    const file = path.join(dir, 'state.json');
    writeFileSync(file, 'old', { mode: 0o644 });
    const mask = process.umask(0o077);
    try {
      writeFileAtomic(file, '{"new":true}\n', { mode: 0o644, fsync: true });
    } finally {
      process.umask(mask);
    }
    assert.equal(readFileSync(file, 'utf8'), '{"new":true}\n');
    assert.equal(statSync(file).mode & 0o777, 0o644, 'the mode asked for, not the umask\'s');
    writeFileAtomic(file, 'again');
    assert.equal(statSync(file).mode & 0o777, 0o600, 'root-only by default');
    assert.deepEqual(readdirSync(dir), ['state.json']);
  });

  it('leaves the old file and no temporary one when the rename cannot happen', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'berth-atomic-'));
    const target = path.join(dir, 'adir');
    writeFileAtomic(path.join(dir, 'keep'), 'x');
    // a directory in the way: rename(2) of a file over a directory fails
    mkdirSync(path.join(target, 'inner'), { recursive: true });
    assert.throws(() => writeFileAtomic(target, 'y'), /EISDIR|ENOTEMPTY|EEXIST/);
    assert.deepEqual(readdirSync(dir).sort(), ['adir', 'keep']);
  });
});
