// The site rules (/etc/berth/site.json, which the sandbox writes) judged at submit through the
// real Slurm: mounts pyxis users write every day and an image from a registry the site does
// not list fail srun and sbatch in the user's terminal with the value and the rule, no node
// is drained and no prolog is even asked; a mount the rules allow still runs.
import assert from 'node:assert/strict';
import { chownSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { sandbox, uidOf } from '../support/stack';
import { jobDir, resumeNodes, run } from '../support/slurm';

const PATH = '/usr/local/bin:/usr/bin:/bin';
const SITE = '/etc/berth/site.json';
const DENIED = `(site rules ${SITE}, userMounts.deniedPrefixes)`;

/** the sandbox berthds' own log files, read from where they are now */
function berthdLogs(): () => string {
  const files = sandbox().nodes.map((n) => n.logs.berthd).filter((f): f is string => Boolean(f));
  const from = files.map((f) => statSync(f).size);
  return () => files.map((f, i) => readFileSync(f).subarray(from[i]).toString('utf8')).join('');
}

const drained = (): string => run('sinfo', ['-h', '-t', 'drain,draining,drained', '-o', '%N']).stdout.trim();

describe('site rules at submit, through Slurm', { timeout: 240_000 }, () => {
  const image = sandbox().demoImage;
  after(() => resumeNodes());

  it('refuses srun -N3 --container-mounts=/etc:/x, and the pyxis mounts /var/lib and /etc/hostname, at submit: no node drained, no prolog asked', () => {
    const dir = jobDir('alice', 'site-rules');
    const logs = berthdLogs();
    const cases: [string, string][] = [
      ['/etc:/x', `berth: --container-mounts=/etc:/x: the source /etc is under /etc, which this site does not let jobs mount ${DENIED}`],
      ['/var/lib', `berth: --container-mounts=/var/lib: the source /var/lib is under /var/lib, which this site does not let jobs mount ${DENIED}`],
      ['/etc/hostname', `berth: --container-mounts=/etc/hostname: the source /etc/hostname is under /etc, which this site does not let jobs mount ${DENIED}`],
    ];
    for (const [mounts, message] of cases) {
      const r = run('srun', ['-N3', `--container-image=${image}`, `--container-mounts=${mounts}`, 'true'], { user: 'alice', cwd: dir, env: { PATH } });
      assert.notEqual(r.code, 0, `srun --container-mounts=${mounts} ran`);
      assert.ok(r.stderr.includes(message), `srun --container-mounts=${mounts}:\n${r.stderr}`);
      const s = run('sbatch', ['-N3', `--container-image=${image}`, `--container-mounts=${mounts}`, '-o', '/dev/null', '--wrap', 'true'], { user: 'alice', cwd: dir, env: { PATH } });
      assert.notEqual(s.code, 0);
      assert.doesNotMatch(s.stdout, /Submitted batch job/);
      assert.ok(s.stderr.includes(message), `sbatch --container-mounts=${mounts}:\n${s.stderr}`);
    }
    // a link in the user's own directory is judged where it leads
    symlinkSync('/etc/ssh', path.join(dir, 'ssh-config'));
    const link = run('srun', ['-N1', `--container-image=${image}`, `--container-mounts=${dir}/ssh-config:/cfg`, 'true'], { user: 'alice', cwd: dir, env: { PATH } });
    assert.notEqual(link.code, 0);
    assert.ok(link.stderr.includes(`berth: --container-mounts=${dir}/ssh-config:/cfg: the source ${dir}/ssh-config (really /etc/ssh) is under /etc, which this site does not let jobs mount ${DENIED}`), link.stderr);
    assert.equal(drained(), '', 'no node drained');
    assert.doesNotMatch(logs(), /"message":"(prologue failed|job container started)"/, "no prolog was asked");
  });

  it('refuses an image from a registry the site does not list (the mirror 127.0.0.1:5001 serves it) at submit', () => {
    const dir = jobDir('alice', 'site-registry');
    const logs = berthdLogs();
    const other = image.replace(/^127\.0\.0\.1:5000\//, '127.0.0.1:5001/');
    assert.notEqual(other, image);
    const r = run('srun', ['-N3', `--container-image=${other}`, 'true'], { user: 'alice', cwd: dir, env: { PATH } });
    assert.notEqual(r.code, 0);
    const site = JSON.parse(readFileSync(SITE, 'utf8')) as { registries: string[] };
    assert.ok(r.stderr.includes(`berth: --container-image=${other}: the registry 127.0.0.1:5001 is not one this site lets jobs use (site rules ${SITE}, registries: ${site.registries.join(', ')}); use an image from one of those`), r.stderr);
    assert.equal(drained(), '', 'no node drained');
    assert.doesNotMatch(logs(), /"message":"prologue failed"/);
  });

  it('still runs a job whose mount the rules allow, on every node', () => {
    const dir = jobDir('alice', 'site-allowed');
    writeFileSync(path.join(dir, 'hello'), 'allowed mount\n');
    chownSync(path.join(dir, 'hello'), uidOf('alice'), uidOf('alice'));
    const r = run('srun', ['-N3', `--container-image=${image}`, `--container-mounts=${dir}:/data:ro`, 'cat', '/data/hello'], { user: 'alice', cwd: dir, env: { PATH } });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'allowed mount\n'.repeat(3));
  });
});
