import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { AccountingLog, accountingFiles } from '../../services/agent/accounting/accounting-log';
import { queryAccounting } from '../../services/agent/accounting/accounting-query';
import type { AccountingRecord } from '../../services/agent/accounting/accounting-record';
import { record } from './fakes/accounting-records';

function tmpLog(): string {
  return path.join(mkdtempSync(path.join(os.tmpdir(), 'berth-acct-')), 'accounting.jsonl');
}

function readAll(file: string, keep: number): AccountingRecord[] {
  return accountingFiles(file, keep).filter((f) => existsSync(f))
    .flatMap((f) => readFileSync(f, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as AccountingRecord));
}

describe('accounting log', () => {
  it('appends a job and its steps as whole lines, in one file', () => {
    const file = tmpLog();
    const log = new AccountingLog(file);
    log.append([record({ JobID: '1' }), record({ JobID: '1', RecordType: 'step', StepID: '0' })]);
    log.append(record({ JobID: '2' }));
    const lines = readFileSync(file, 'utf8').split('\n');
    assert.equal(lines.length, 4, 'three records and the final newline');
    assert.deepEqual(lines.slice(0, 3).map((l) => (JSON.parse(l) as AccountingRecord).JobID), ['1', '1', '2']);
    assert.equal((statSync(file).mode & 0o777), 0o640);
  });

  it('rotates by size, keeps K files and drops the oldest', () => {
    const file = tmpLog();
    const one = JSON.stringify(record({ JobID: '1' })).length + 1;
    const log = new AccountingLog(file, { maxBytes: one * 3, keep: 2 });
    for (let i = 1; i <= 10; i++) log.append(record({ JobID: String(i) }));
    // 3 records per file: 10 = 1 (current) + 3 + 3, and the first 3 were dropped with keep 2
    assert.deepEqual(readAll(file, 2).map((r) => r.JobID), ['4', '5', '6', '7', '8', '9', '10']);
    assert.ok(!existsSync(`${file}.3`));
    for (const f of [file, `${file}.1`, `${file}.2`]) assert.ok(statSync(f).size <= one * 3, `${f} stays under maxBytes`);
  });

  it('never splits a job\'s records across files, even past maxBytes', () => {
    const file = tmpLog();
    const log = new AccountingLog(file, { maxBytes: 4096, keep: 3 });
    log.append(record({ JobID: '1' }));
    const many = Array.from({ length: 20 }, (_, i) => record({ JobID: '2', RecordType: 'step', StepID: String(i) }));
    log.append(many);
    assert.deepEqual(readFileSync(`${file}.1`, 'utf8').split('\n').filter(Boolean).map((l) => (JSON.parse(l) as AccountingRecord).JobID), ['1']);
    assert.equal(readFileSync(file, 'utf8').split('\n').filter(Boolean).length, 20);
  });

  it('loses and splits nothing when several writers in the process append and rotate concurrently', async () => {
    const file = tmpLog();
    const rotation = { maxBytes: 64 * 1024, keep: 1000 };
    // four log objects on one file, as several services of one berthd could hold
    const writers = Array.from({ length: 4 }, () => new AccountingLog(file, rotation));
    const perWriter = 2500;
    await Promise.all(writers.map(async (w, wi) => {
      for (let i = 0; i < perWriter; i++) {
        w.append([record({ JobID: String(wi * perWriter + i) }), record({ JobID: String(wi * perWriter + i), RecordType: 'step', StepID: '0' })]);
        if (i % 50 === 0) await new Promise((r) => setImmediate(r));
      }
    }));
    const got = readAll(file, 1000);
    assert.equal(got.length, 4 * perWriter * 2, 'every record is there');
    const ids = new Set(got.filter((r) => r.RecordType === 'job').map((r) => r.JobID));
    assert.equal(ids.size, 4 * perWriter, 'each job once');
    // each job's step record follows its job record in the same file
    for (const f of accountingFiles(file, 1000).filter((x) => existsSync(x))) {
      const recs = readFileSync(f, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as AccountingRecord);
      for (let i = 0; i < recs.length; i += 2) assert.equal(recs[i + 1]!.JobID, recs[i]!.JobID, `${f}: a job and its step together`);
    }
    assert.ok(existsSync(`${file}.10`), 'it did rotate many times');
  });

  it('QueryAccounting reads the rotated files first, then the current one, and skips torn lines', async () => {
    const file = tmpLog();
    const one = JSON.stringify(record({ JobID: '1' })).length + 1;
    const log = new AccountingLog(file, { maxBytes: one * 2, keep: 5 });
    for (let i = 1; i <= 7; i++) log.append(record({ JobID: String(i) }));
    writeFileSync(file, '{"JobID":"torn', { flag: 'a' });
    const stats = { files: 0, lines: 0, matched: 0, skipped: 0 };
    const got: string[] = [];
    for await (const batch of queryAccounting(file, 5, {}, 1 << 20, stats)) got.push(...batch.map((t) => (JSON.parse(t) as AccountingRecord).JobID));
    assert.deepEqual(got, ['1', '2', '3', '4', '5', '6', '7']);
    assert.equal(stats.files, 4);
    assert.equal(stats.skipped, 1);
  });

  it('a rotation during a query neither repeats nor skips records', async () => {
    const file = tmpLog();
    const one = JSON.stringify(record({ JobID: '1' })).length + 1;
    const log = new AccountingLog(file, { maxBytes: one * 100, keep: 50 });
    for (let i = 0; i < 1000; i++) log.append(record({ JobID: String(i) }));
    const got: string[] = [];
    let rotatedDuring = false;
    // small batches: the generator yields often, and between batches the writer rotates
    for await (const batch of queryAccounting(file, 50, {}, one * 10)) {
      got.push(...batch.map((t) => (JSON.parse(t) as AccountingRecord).JobID));
      if (!rotatedDuring) {
        for (let i = 0; i < 250; i++) log.append(record({ JobID: `late${i}` }));
        rotatedDuring = true;
      }
    }
    const early = got.filter((id) => !id.startsWith('late'));
    assert.deepEqual(early, Array.from({ length: 1000 }, (_, i) => String(i)));
  });
});
