import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { mungePayload, parseUnmunge, UnmungeVerifier } from '../../services/shared/munge';

function fakeUnmunge(script: string): string {
  const f = path.join(mkdtempSync(path.join(os.tmpdir(), 'berth-munge-')), 'unmunge');
  writeFileSync(f, `#!/bin/sh\ncat >/dev/null\n${script}\n`);
  chmodSync(f, 0o755);
  return f;
}

function output(epoch: number, payload: string, status = 'Success (0)'): string {
  return `STATUS:          ${status}\nENCODE_HOST:     vm (127.0.1.1)\nENCODE_TIME:     2026-11-29 05:00:00 +0000 (${epoch})\nDECODE_TIME:     2026-11-29 05:00:00 +0000 (${epoch})\nTTL:             300\nUID:             alice (2001)\nGID:             alice (2001)\nLENGTH:          ${payload.length}\n\n${payload}`;
}

describe('munge credentials', () => {
  it('parses unmunge output', () => {
    const { fields, payload } = parseUnmunge(output(1000, 'berth.v1/ExecStep:42'));
    assert.equal(fields.get('UID'), 'alice (2001)');
    assert.equal(payload, 'berth.v1/ExecStep:42');
  });

  it('accepts a fresh credential and returns the uid, gid and payload', async () => {
    const now = Math.floor(Date.now() / 1000);
    const v = new UnmungeVerifier(fakeUnmunge(`printf '%s' '${output(now, mungePayload('ExecStep', '42'))}'`));
    const id = await v.verify('CRED');
    assert.deepEqual([id.uid, id.gid, id.payload], [2001, 2001, 'berth.v1/ExecStep:42']);
  });

  it('refuses a stale credential', async () => {
    const old = Math.floor(Date.now() / 1000) - 3600;
    const v = new UnmungeVerifier(fakeUnmunge(`printf '%s' '${output(old, 'p')}'`), 120_000);
    await assert.rejects(v.verify('CRED'), /stale/);
  });

  it('refuses what munged reports as replayed', async () => {
    const v = new UnmungeVerifier(fakeUnmunge(`printf '%s' 'STATUS:          Replayed credential (17)\n'; exit 17`));
    await assert.rejects(v.verify('CRED'), /refused: Replayed credential/);
  });
});
