// A private image through real Slurm: alice's own docker login lets her jobs run it; bob,
// without one, is refused at submit (even with the digest, even though it is cached on the
// node) and no node drains; a login others can read is refused with the chmod that fixes it;
// bob with a login of his own runs the cached copy.
import assert from 'node:assert/strict';
import { chmodSync, existsSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { node, sandbox, writeDockerLogin } from '../support/stack';
import { containersOfJob, jobDir, jobIdFrom, jobState, run, waitFor } from '../support/slurm';
import { loginFile, stashLogins } from '../support/docker-logins';


function nodeState(name: string): string {
  return run('sinfo', ['-h', '-n', name, '-o', '%T']).stdout.trim();
}

describe('private images through Slurm', { timeout: 180_000 }, () => {
  const image = () => sandbox().privateRegistry.image;
  let restoreLogins = (): void => {};

  before(() => {
    restoreLogins = stashLogins(['alice', 'bob']);
    writeDockerLogin(loginFile('alice'), 'alice', 2001);
    // start from an n3 without the image, so that alice's job pulls it with her login
    const sock = `unix://${node('n3').dockerSocket}`;
    const ids = run('docker', ['-H', sock, 'images', '-q', '127.0.0.1:5002/berth/private']).stdout.split('\n').filter(Boolean);
    for (const id of new Set(ids)) run('docker', ['-H', sock, 'rmi', '-f', id]);
  });

  after(() => {
    restoreLogins();
  });

  const srun = (user: string, ref: string) =>
    run('srun', ['-N1', '-w', 'n3', `--container-image=${ref}`, 'berth', 'exec', '--', 'cat', '/etc/berth-private-release'], { user, cwd: jobDir(user, 'private') });

  let pinned = '';

  it('runs for alice with her own login', () => {
    const r = srun('alice', image());
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim(), 'berth private image 1.0');
    const resolved = run('berth', ['resolve', image()], { user: 'alice' });
    assert.equal(resolved.code, 0, resolved.stderr);
    pinned = resolved.stdout.trim();
    assert.match(pinned, /^127\.0\.0\.1:5002\/berth\/private@sha256:[a-f0-9]{64}$/);
  });

  it('refuses bob at submit, by tag and by the digest cached on n3, and drains no node', () => {
    for (const ref of [image(), pinned]) {
      const r = srun('bob', ref);
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /berth: image '127\.0\.0\.1:5002\/berth\/private[^']*': registry 127\.0\.0\.1:5002 needs credentials \(HTTP 401\); log in with docker login 127\.0\.0\.1:5002/);
    }
    assert.doesNotMatch(nodeState('n3'), /drain/);
  });

  it('refuses a login file others can read, saying how to fix it', () => {
    chmodSync(loginFile('alice'), 0o644);
    try {
      const r = srun('alice', image());
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, new RegExp(`${loginFile('alice')} can be read or written by other users \\(mode 0644\\); berth will not use them: run: chmod 600`));
    } finally {
      chmodSync(loginFile('alice'), 0o600);
    }
  });

  it('refuses bob a docker run of the cached private image from his own job', () => {
    const dir = jobDir('bob', 'private-docker');
    const sub = run('sbatch', ['-N1', '-w', 'n3', '--no-container-batch', `--container-image=${sandbox().demoImage}`, '-o', '/dev/null', '--wrap', 'sleep 120'], { user: 'bob', cwd: dir });
    assert.equal(sub.code, 0, sub.stderr);
    const jobId = jobIdFrom(sub.stdout);
    try {
      waitFor(`job ${jobId} running`, () => jobState(jobId) === 'RUNNING' || undefined);
      waitFor(`container of job ${jobId}`, () => containersOfJob('n3', jobId, 'running').length > 0 || undefined);
      // the prologue writes the job's client certificate just after starting the container
      waitFor(`Docker endpoint of job ${jobId}`, () => existsSync(`/run/berth/n3/jobs/${jobId}.docker.sock`) || undefined);
      const env = { PATH: '/usr/local/bin:/usr/bin:/bin', HOME: '/home/bob', DOCKER_HOST: `unix:///run/berth/n3/jobs/${jobId}.docker.sock` };
      const r = run('docker', ['run', '--rm', '--user', '2002:2002', '--network', 'host', '--security-opt', 'no-new-privileges', '--memory', '100m', '--memory-swap', '100m', '--cpus', '1', pinned, 'cat', '/etc/berth-private-release'], { user: 'bob', env, cwd: dir });
      assert.notEqual(r.code, 0, r.stdout);
      assert.match(r.stderr, /authorization denied by plugin berth-n3: image 127\.0\.0\.1:5002\/berth\/private@sha256:[a-f0-9]+ is on this node only because another user pulled it with their own registry login/);
    } finally {
      run('scancel', [jobId]);
      waitFor(`job ${jobId} to end`, () => jobState(jobId) === '' || undefined, 60_000);
    }
  });

  it('runs the cached copy for bob once he has a login of his own', () => {
    writeDockerLogin(loginFile('bob'), 'bob', 2002);
    const r = srun('bob', pinned);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim(), 'berth private image 1.0');
  });
});
