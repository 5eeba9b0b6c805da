import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { encodeMunge, mungePayload, parseUnmunge, prefetchMunge, UnmungeVerifier } from '../../services/shared/munge';

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

  it('says in one line that munged is not running, and what to do, when munge cannot reach it', async () => {
    // what munge 0.5.15 prints with munged stopped (measured, test/e2e/engine-drills.test.ts)
    const munge = fakeUnmunge('echo \'munge: Error: Failed to access "/run/munge/munge.socket.2": No such file or directory (Did you start munged?)\' >&2; exit 6');
    await assert.rejects(encodeMunge('berth.v1/GetJob:1', munge), (err: Error) => {
      assert.equal(err.message.split('\n').length, 1);
      assert.match(err.message, /^munged is not running on this node \(munge: Error: Failed to access .*\); berth authenticates you to berthd with munge: ask the site admins to start it \(systemctl start munge\)$/);
      return true;
    });
  });

  it('names munge and the site admins for any other munge failure', async () => {
    const munge = fakeUnmunge('echo "munge: Error: Invalid credential format" >&2; exit 1');
    await assert.rejects(encodeMunge('berth.v1/GetJob:1', munge), /^Error: munge could not make a credential to authenticate you to berthd \(munge: Error: Invalid credential format\); ask the site admins to check munge on this node$/);
  });

  it('hands a prefetched credential out once, for its own payload only; later calls encode their own', async () => {
    // each run of the fake munge logs its payload and prints a new credential
    const log = path.join(mkdtempSync(path.join(os.tmpdir(), 'berth-munge-log-')), 'runs');
    const munge = fakeUnmunge(`echo "$2" >> ${log}; echo "CRED-$$"`);
    const runs = (payload: string) => (existsSync(log) ? readFileSync(log, 'utf8').split('\n').filter((l) => l === payload).length : 0);
    prefetchMunge('berth.v1/ExecStep:7', munge);
    const other = await encodeMunge('berth.v1/ExecStep:8', munge);
    const first = await encodeMunge('berth.v1/ExecStep:7', munge);
    assert.equal(runs('berth.v1/ExecStep:7'), 1, 'the prefetched credential was taken, not a second one made');
    const second = await encodeMunge('berth.v1/ExecStep:7', munge);
    assert.equal(runs('berth.v1/ExecStep:7'), 2);
    for (const c of [other, first, second]) assert.match(c, /^CRED-[0-9]+$/);
    assert.equal(new Set([other, first, second]).size, 3, 'three credentials, none handed out twice');
  });

  it('reports a prefetched credential\'s failure to the call that takes it', async () => {
    const munge = fakeUnmunge('echo "munge: Error: Invalid credential format" >&2; exit 1');
    prefetchMunge('berth.v1/ExecStep:9', munge);
    await assert.rejects(encodeMunge('berth.v1/ExecStep:9', munge), /munge could not make a credential/);
  });
});
