import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { AccountingLog } from '../../services/agent/accounting/accounting-log';
import { type AccountingFilter, parseAccountingFilter, queryAccounting } from '../../services/agent/accounting/accounting-query';
import type { AccountingRecord } from '../../services/agent/accounting/accounting-record';
import { BerthError } from '../../services/shared/errors';
import { record } from './fakes/accounting-records';

const req = (over: Partial<Parameters<typeof parseAccountingFilter>[0]> = {}) => ({ since: '', until: '', jobId: '', user: '', uid: 0, jobsOnly: false, ...over });

async function query(file: string, filter: AccountingFilter, maxBatchBytes?: number): Promise<{ recs: AccountingRecord[]; batches: number }> {
  const recs: AccountingRecord[] = [];
  let batches = 0;
  for await (const b of queryAccounting(file, 3, filter, maxBatchBytes)) {
    batches++;
    recs.push(...b.map((t) => JSON.parse(t) as AccountingRecord));
  }
  return { recs, batches };
}

describe('QueryAccounting filters', () => {
  const file = path.join(mkdtempSync(path.join(os.tmpdir(), 'berth-q-')), 'a.jsonl');
  const log = new AccountingLog(file, { maxBytes: 8192, keep: 3 });
  // job 10 (alice) 08:00-09:00, job 11 (bob) 10:00-12:00, job 12 (alice) 13:00-13:30, each with a step
  for (const [id, user, uid, start, end] of [['10', 'alice', 2001, '08:00', '09:00'], ['11', 'bob', 2002, '10:00', '12:00'], ['12', 'alice', 2001, '13:00', '13:30']] as const) {
    const t = (hm: string) => `2026-05-01T${hm}:00.000Z`;
    log.append([record({ JobID: id, User: user, UID: uid, Start: t(start), End: t(end) }),
      record({ JobID: id, User: user, UID: uid, RecordType: 'step', StepID: '0', TaskID: 0, Start: t(start), End: t(end) })]);
  }
  log.append(record({ JobID: '13', UID: 20010, User: 'carol', Start: '2026-05-02T10:00:00.000Z', End: '2026-05-02T11:00:00.000Z' }));
  const ids = (recs: AccountingRecord[]) => recs.map((r) => `${r.JobID}${r.RecordType === 'step' ? '.' + r.StepID : ''}`);

  it('by job id', async () => {
    assert.deepEqual(ids((await query(file, parseAccountingFilter(req({ jobId: '11' })))).recs), ['11', '11.0']);
  });

  it('by uid and by user name, not matching a uid that merely starts the same', async () => {
    assert.deepEqual(ids((await query(file, parseAccountingFilter(req({ uid: 2001 })))).recs), ['10', '10.0', '12', '12.0']);
    assert.deepEqual(ids((await query(file, parseAccountingFilter(req({ user: 'bob' })))).recs), ['11', '11.0']);
  });

  it('by time: records overlapping [since, until]', async () => {
    const f = parseAccountingFilter(req({ since: '2026-05-01T09:30:00Z', until: '2026-05-01T12:30:00Z' }));
    assert.deepEqual(ids((await query(file, f)).recs), ['11', '11.0']);
    const edge = parseAccountingFilter(req({ since: '2026-05-01T09:00:00Z', until: '2026-05-01T10:00:00Z' }));
    assert.deepEqual(ids((await query(file, edge)).recs), ['10', '10.0', '11', '11.0'], 'bounds are inclusive');
  });

  it('job records only', async () => {
    assert.deepEqual(ids((await query(file, parseAccountingFilter(req({ jobsOnly: true, user: 'alice' })))).recs), ['10', '12']);
  });

  it('cuts batches by size so a large result never makes one huge message', async () => {
    const { recs, batches } = await query(file, {}, 1500);
    assert.equal(recs.length, 7);
    assert.ok(batches >= 4, `${batches} batches`);
  });

  it('refuses bad times, reversed ranges and bad job ids, saying what to send', () => {
    const code = (fn: () => unknown, re: RegExp) => assert.throws(fn, (e: unknown) => e instanceof BerthError && e.code === 'INVALID_REQUEST' && re.test(e.message));
    code(() => parseAccountingFilter(req({ since: 'yesterday' })), /since 'yesterday' is not an RFC 3339 time/);
    code(() => parseAccountingFilter(req({ since: '2026-05-02T00:00:00Z', until: '2026-05-01T00:00:00Z' })), /before since.*swap them/);
    code(() => parseAccountingFilter(req({ jobId: '12;rm' })), /not a Slurm job id/);
  });
});
