import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { ensureSpoolDir, epilogSpoolDir, readSpooledEpilogs, removeSpooledEpilog, spoolEpilog } from '../../services/shared/epilog-spool';

describe('epilog spool', () => {
  const fresh = () => epilogSpoolDir(mkdtempSync(path.join(os.tmpdir(), 'berth-spool-')), 'n1');

  it('lives in runDir/NODE/epilog-spool and holds one record per job, oldest first', () => {
    const dir = fresh();
    assert.match(dir, /\/n1\/epilog-spool$/);
    spoolEpilog(dir, { jobId: '12', node: 'n1', time: '2026-05-01T10:00:05.000Z', reason: 'b' });
    spoolEpilog(dir, { jobId: '11', node: 'n1', time: '2026-05-01T10:00:01.000Z', reason: 'a' });
    spoolEpilog(dir, { jobId: '12', node: 'n1', time: '2026-05-01T10:00:06.000Z', reason: 'again' }); // a repeated epilog replaces its record
    const { records, bad } = readSpooledEpilogs(dir);
    assert.deepEqual(records.map((r) => [r.jobId, r.reason]), [['11', 'a'], ['12', 'again']]);
    assert.deepEqual(bad, []);
    assert.deepEqual(readdirSync(dir).sort(), ['11.json', '12.json'], 'no temporary files left');
    removeSpooledEpilog(dir, '11');
    assert.deepEqual(readSpooledEpilogs(dir).records.map((r) => r.jobId), ['12']);
  });

  it('reads an absent spool as empty', () => {
    assert.deepEqual(readSpooledEpilogs(fresh()), { records: [], bad: [] });
  });

  it('names files that are not records and leaves them alone', () => {
    const dir = fresh();
    ensureSpoolDir(dir);
    writeFileSync(path.join(dir, 'notes.txt'), 'x');
    writeFileSync(path.join(dir, '13.json'), '{"jobId":"14","time":"2026-05-01T10:00:00Z"}');
    writeFileSync(path.join(dir, '15.json'), 'not json');
    const { records, bad } = readSpooledEpilogs(dir);
    assert.deepEqual(records, []);
    assert.deepEqual(bad.sort(), ['13.json', '15.json', 'notes.txt']);
  });

  it('refuses a spool directory others could write to, or a symlink in its place', () => {
    const loose = fresh();
    mkdirSync(loose, { recursive: true });
    chmodSync(loose, 0o777);
    assert.throws(() => spoolEpilog(loose, { jobId: '1', node: 'n1', time: new Date().toISOString(), reason: '' }), /mode 777; berth's epilog spool must be mode 0700/);
    const linked = fresh();
    mkdirSync(path.dirname(linked), { recursive: true });
    symlinkSync(os.tmpdir(), linked);
    assert.throws(() => readSpooledEpilogs(linked), /is not a directory \(a symlink or a file\)/);
    assert.throws(() => spoolEpilog(fresh(), { jobId: '../x', node: 'n1', time: new Date().toISOString(), reason: '' }), /not a Slurm job id/);
  });
});
