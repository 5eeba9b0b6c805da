// pyxis's --container-mounts flags and tmpfs form and its --container-name flags, through the
// real Slurm and dockerd: what the container's mount table shows, what is refused at submit
// and by the AuthZ plugin, and how the steps of one job find, make and join named containers.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { pushBusyboxImage } from '../support/images';
import { jobDir, jobIdFrom, run, runningContainerJob } from '../support/slurm';

const PATH = '/usr/local/bin:/usr/bin:/bin';
const TAG = '127.0.0.1:5000/berth/pyxis-mounts:1';

/** the mountinfo line of the mount at `target`: its options (field 6) and its optional fields (propagation) */
function mountAt(mountinfo: string, target: string): { options: string; tags: string; fsOptions: string } | undefined {
  const line = mountinfo.split('\n').find((l) => l.split(' ')[4] === target);
  if (!line) return undefined;
  const [left, right] = line.split(' - ');
  const f = left!.split(' ');
  return { options: f[5]!, tags: f.slice(6).join(' '), fsOptions: right!.split(' ')[2] ?? '' };
}

describe("pyxis's mount and name flags", { timeout: 300_000 }, () => {
  pushBusyboxImage(TAG, { 'etc/marker': 'pyxis-mounts\n' });
  const dir = jobDir('alice', 'pyxis-mounts');
  const uid = run('id', ['-u', 'alice']).stdout.trim();
  const srun = (args: string[]) => run('srun', ['-N1', '-w', 'n2', ...args], { user: 'alice', cwd: dir, env: { PATH } });
  const cancel: string[] = [];
  after(() => {
    for (const id of cancel) run('scancel', [id]);
  });

  it('mounts tmpfs:DST as a tmpfs the user can write, and honours ro+rprivate on a bind', () => {
    const r = srun([`--container-image=${TAG}`, `--container-mounts=tmpfs:/scratch,${dir}:/in:ro+rprivate`, 'sh', '-c',
      'touch /scratch/made && ls -ldn /scratch && cat /proc/self/mountinfo; touch /in/x 2>/dev/null && echo in-writable; true']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`^d\\S+\\s+\\d+\\s+${uid}\\s`, 'm'), 'the tmpfs is the user\'s');
    const tmpfs = mountAt(r.stdout, '/scratch');
    assert.ok(tmpfs, r.stdout);
    assert.match(tmpfs.options, /^rw,nosuid,nodev,/);
    assert.doesNotMatch(tmpfs.options, /noexec/, 'programs run from it, as from pyxis\'s');
    assert.match(tmpfs.fsOptions, new RegExp(`size=\\d+k.*uid=${uid}`));
    const bind = mountAt(r.stdout, '/in');
    assert.ok(bind, r.stdout);
    assert.match(bind.options, /^ro\b/);
    assert.doesNotMatch(bind.tags, /shared:|master:/, 'private: no propagation either way');
    assert.doesNotMatch(r.stdout, /in-writable/);
    // slave propagation needs a shared host mount; the sandbox's / is private: the step's fault, not the node's
    const slave = srun([`--container-image=${TAG}`, `--container-mounts=${dir}:/in:rslave`, 'true']);
    assert.notEqual(slave.code, 0);
    assert.match(slave.stderr, /which is private on this node, so slave propagation \(slave, rslave\) cannot be had for it; leave the propagation out/);
    assert.doesNotMatch(run('sinfo', ['-h', '-n', 'n2', '-o', '%t']).stdout, /drain/, 'n2 stays in service');
  });

  it('refuses shared propagation and unknown flags at submit, saying why and what to use', () => {
    const shared = srun([`--container-image=${TAG}`, `--container-mounts=${dir}:/in:ro+rshared`, 'true']);
    assert.notEqual(shared.code, 0);
    assert.match(shared.stderr, /'rshared': shared propagation would carry mounts made in the container onto the host, which no job may do; use rslave/);
    const name = srun([`--container-image=${TAG}`, '--container-name=box:no_create', 'true']);
    assert.notEqual(name.code, 0);
    assert.match(name.stderr, /unknown flag 'no_create' \(pyxis has no no_create: to only join a container that exists, use :exec\)/);
    const exec = srun([`--container-image=${TAG}`, '--container-name=box:exec', 'true']);
    assert.notEqual(exec.code, 0);
    assert.match(exec.stderr, /box:exec joins a container that exists, and a new job has none yet/);
  });

  it("refuses a user's own docker run with shared propagation or a tmpfs that is not theirs (AuthZ)", () => {
    const job = runningContainerJob('alice', 'pyxis-mounts-docker', 'n2');
    cancel.push(job.jobId);
    const docker = (args: string[]) => run('docker', args, { user: 'alice', cwd: job.dir, env: { PATH, DOCKER_HOST: `unix:///run/berth/n2/jobs/${job.jobId}.docker.sock`, HOME: '/home/alice' } });
    const ok = docker(['run', '--rm', '-v', `${job.dir}:/x:ro,rprivate`, '--tmpfs', '/t:size=1m', TAG, 'true']);
    assert.equal(ok.code, 0, ok.stderr);
    for (const [args, re] of [
      [['-v', `${job.dir}:/x:rshared`], /rshared propagation: mounts made in the container would reach the host/],
      [['--mount', `type=bind,source=${job.dir},target=/x,bind-propagation=shared`], /BindOptions\.Propagation=shared is not allowed/],
      [['--tmpfs', '/t:uid=0'], /the tmpfs would belong to uid 0, not to you/],
      [['--tmpfs', '/t:suid'], /'suid' would allow setuid programs/],
    ] as [string[], RegExp][]) {
      const r = docker(['run', '--rm', ...args, TAG, 'true']);
      assert.notEqual(r.code, 0, args.join(' '));
      assert.match(r.stderr, re, args.join(' '));
    }
    run('scancel', [job.jobId]);
  });

  it("follows pyxis's NAME:FLAG forms, joins an unnamed step's container as JOB.STEP, and warns about mounts it cannot apply", () => {
    const out = path.join(dir, 'names.txt');
    const script = [
      `srun --container-image=${TAG} --container-name=box:create sh -c 'echo made > /tmp/note'; echo "create=$?"`,
      'srun --container-name=box:create true; echo "create-again=$?"',
      'srun --container-name=other:exec true; echo "exec-missing=$?"',
      'srun --container-name=box:exec cat /tmp/note; echo "exec=$?"',
      'srun --container-name=box:no_exec cat /tmp/note; echo "no_exec=$?"',
      `srun --container-name=box --container-mounts=${dir}:/mnt/x sh -c 'test ! -d /mnt/x'; echo "ignored=$?"`,
      // step 6: an unnamed step container, joined by a later step while it runs
      `srun --mem=100M --container-image=${TAG} sh -c 'touch /tmp/from-step; sleep 8' &`,
      'sleep 4',
      'srun --overlap --mem=100M --container-name="$SLURM_JOB_ID.6" ls /tmp/from-step; echo "job-step=$?"',
      'wait',
    ].join('\n');
    const sub = run('sbatch', ['-N1', '-w', 'n2', '-c2', '--mem=400M', '--wait', '-o', out, '--wrap', script], { user: 'alice', cwd: dir, env: { PATH }, timeoutMs: 180_000 });
    const text = readFileSync(out, 'utf8');
    assert.equal(sub.code, 0, `${sub.stderr}\n${text}`);
    cancel.push(jobIdFrom(sub.stdout));
    assert.match(text, /^create=0$/m, text);
    assert.match(text, /box:create makes a new container, but the job has one named 'box' on n2 already; drop :create to join it/);
    assert.match(text, /^create-again=[1-9]/m);
    assert.match(text, /other:exec joins a container that exists, and the job has none named 'other' on n2/);
    assert.match(text, /^exec-missing=[1-9]/m);
    assert.match(text, /^made\nexec=0$/m);
    assert.match(text, /^made\nno_exec=0$/m);
    assert.match(text, /berth: warning: ignoring --container-mounts when joining the existing container 'box'/);
    assert.match(text, /^ignored=0$/m);
    assert.match(text, /^\/tmp\/from-step\njob-step=0$/m);
  });
});
