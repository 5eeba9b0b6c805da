// One berthd per node: a second start is refused while the first lives; a dead holder's lock is taken over.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { NodeLockedError, processStartTime, takeNodeLock } from '../../services/agent/node-lock';

describe('node lock', () => {
  it('refuses a second holder while the first lives, naming it, and frees on release', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'berth-lock-'));
    const release = takeNodeLock(dir, 'n1');
    const child = spawn('sleep', ['30']);
    try {
      assert.throws(() => takeNodeLock(dir, 'n1', child.pid!), (e: Error) => e instanceof NodeLockedError && new RegExp(`node n1 already has a running berthd \\(pid ${process.pid}`).test(e.message));
      release();
      assert.ok(!existsSync(path.join(dir, 'berthd.lock')));
      takeNodeLock(dir, 'n1', child.pid!);
      assert.match(readFileSync(path.join(dir, 'berthd.lock'), 'utf8'), new RegExp(`^${child.pid} `));
    } finally {
      child.kill();
    }
  });

  it("takes over the lock of a berthd that died (SIGKILL), and of a pid reused by another process", async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'berth-lock-'));
    const child = spawn('sleep', ['30']);
    takeNodeLock(dir, 'n1', child.pid!);
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    const release = takeNodeLock(dir, 'n1');
    assert.match(readFileSync(path.join(dir, 'berthd.lock'), 'utf8'), new RegExp(`^${process.pid} `));
    release();
    // our own pid with another start time: what a reused pid looks like
    writeFileSync(path.join(dir, 'berthd.lock'), `${process.pid} 1\n`);
    const other = spawn('sleep', ['30']);
    try {
      takeNodeLock(dir, 'n1', other.pid!);
    } finally {
      other.kill();
    }
    assert.ok(processStartTime(process.pid));
  });
});
