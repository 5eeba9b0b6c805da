// One berthd per node: a second start is refused while the first lives; a dead holder's lock is taken over.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
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

  it('takes over the lock of a killed berthd its parent has not reaped yet (a zombie)', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'berth-lock-'));
    // sleep 30's parent becomes `sleep 60`, which never waits for it: killed, it stays a zombie
    const parent = spawn('sh', ['-c', 'sleep 30 & echo $!; exec sleep 60'], { stdio: ['ignore', 'pipe', 'ignore'] });
    try {
      const [line] = (await once(parent.stdout!, 'data')) as [Buffer];
      const pid = Number(line.toString().trim());
      takeNodeLock(dir, 'n1', pid);
      process.kill(pid, 'SIGKILL');
      for (let i = 0; i < 100 && !/^\d+ \(\w+\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8')); i++) await new Promise((r) => setTimeout(r, 10));
      assert.match(readFileSync(`/proc/${pid}/stat`, 'utf8'), /^\d+ \(\w+\) Z/);
      assert.equal(processStartTime(pid), undefined);
      takeNodeLock(dir, 'n1')();
    } finally {
      parent.kill('SIGKILL');
    }
  });
});
