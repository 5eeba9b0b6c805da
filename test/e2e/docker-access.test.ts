// Issue #3 through the real sandbox: a job's user drives the plain docker CLI on their
// node over dockerd's TLS socket with the certificate berth issued for the job; berth's
// AuthZ plugin enforces the site policy and job ownership, and access ends with the job.
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { after, describe, it } from 'node:test';
import { node, sandbox } from '../support/stack';
import { containersOfJob, jobDir, jobIdFrom, jobNodes, jobState, run, waitFor } from '../support/slurm';

const PATH = '/usr/local/bin:/usr/bin:/bin';
/** what hpc-default asks of a container: the job's user, no new privileges, within the job's CPUs and memory */
const ALLOWED = (uid: string): string[] => ['--user', `${uid}:${uid}`, '--network', 'host', '--security-opt', 'no-new-privileges', '--memory', '500m', '--memory-swap', '500m', '--cpus', '1'];

function runningJob(user: string, name: string, on?: string): { jobId: string; nodeName: string; dir: string } {
  const dir = jobDir(user, name);
  const sub = run('sbatch', ['-N1', ...(on ? ['-w', on] : []), '--no-container-batch', `--container-image=${sandbox().demoImage}`, '-o', '/dev/null', '--wrap', 'sleep 300'], { user, cwd: dir });
  assert.equal(sub.code, 0, sub.stderr);
  const jobId = jobIdFrom(sub.stdout);
  waitFor(`job ${jobId} running`, () => jobState(jobId) === 'RUNNING' || undefined);
  const nodeName = jobNodes(jobId);
  waitFor(`container of job ${jobId}`, () => containersOfJob(nodeName, jobId, 'running').length > 0 || undefined);
  return { jobId, nodeName, dir };
}

/** the docker CLI through the job's Docker endpoint (what TaskProlog gives the job's tasks) */
function dockerAs(user: string, jobId: string, nodeName: string, args: string[], cwd?: string) {
  const env = { PATH, DOCKER_HOST: `unix:///run/berth/${nodeName}/jobs/${jobId}.docker.sock`, HOME: `/home/${user}` };
  return run('docker', args, { user, env, cwd });
}

/** the docker CLI straight at dockerd's TLS port with the job's certificate */
function dockerTls(user: string, jobId: string, nodeName: string, args: string[], cwd?: string) {
  const env = {
    PATH, DOCKER_HOST: `tcp://${node(nodeName).dockerTlsAddress}`, DOCKER_TLS_VERIFY: '1', DOCKER_CERT_PATH: `/run/berth/${nodeName}/jobs/${jobId}`, HOME: `/home/${user}`,
  };
  return run('docker', args, { user, env, cwd });
}

/** What `eval "$(berth docker-env)"` gives a job's user, checked against what the tests use. */
function dockerEnvOf(user: string, jobId: string, nodeName: string): string {
  const r = run('berth', ['docker-env', '--node', nodeName, '--job', jobId], { user, env: { PATH } });
  assert.equal(r.code, 0, r.stderr);
  return r.stdout;
}

describe('Docker access for job users, through the AuthZ plugin', { timeout: 240_000 }, () => {
  const cancel: string[] = [];
  after(() => {
    for (const id of cancel) run('scancel', [id]);
  });

  it('lets the job user run an allowed container, which joins the job and goes with it', () => {
    const { jobId, nodeName, dir } = runningJob('alice', 'docker-ok');
    cancel.push(jobId);
    const uid = run('id', ['-u', 'alice']).stdout.trim();
    const image = sandbox().demoImage;
    assert.equal(dockerEnvOf('alice', jobId, nodeName), `export DOCKER_HOST=unix:///run/berth/${nodeName}/jobs/${jobId}.docker.sock\nunset DOCKER_TLS_VERIFY DOCKER_CERT_PATH\n`);
    const ps = dockerAs('alice', jobId, nodeName, ['ps']);
    assert.equal(ps.code, 0, ps.stderr);
    const started = dockerAs('alice', jobId, nodeName, ['run', '-d', ...ALLOWED(uid), '-v', `${dir}:${dir}`, image, 'sleep', '200'], dir);
    assert.equal(started.code, 0, started.stderr);
    const id = started.stdout.trim();
    const shown = run('berth', ['job', jobId, '--node', nodeName, '--json']);
    assert.ok((JSON.parse(shown.stdout) as { userContainers: string[] }).userContainers.includes(id), shown.stdout);
    const logs = dockerAs('alice', jobId, nodeName, ['logs', id]);
    assert.equal(logs.code, 0, logs.stderr);

    const refusals: [string[], RegExp][] = [
      [['--privileged'], /HostConfig\.Privileged/],
      [['--cap-add', 'SYS_ADMIN'], /HostConfig\.CapAdd/],
      [['--pid', 'host'], /PidMode/],
      [['--security-opt', 'seccomp=unconfined'], /SecurityOpt/],
      [['-v', '/etc:/host-etc'], /Binds|bind/i],
      [['-v', '/var/run/docker.sock:/var/run/docker.sock'], /docker\.sock|Binds|bind/i],
      [['--ipc', 'host'], /IpcMode/],
      [['--uts', 'host'], /UTSMode/],
      [['--userns', 'host'], /UsernsMode/],
      [['--security-opt', 'apparmor=unconfined'], /SecurityOpt/],
      [['--device', '/dev/fuse'], /Devices/],
      [['--memory-swap', '-1'], /MemorySwap/],
    ];
    for (const [flags, field] of refusals) {
      const r = dockerAs('alice', jobId, nodeName, ['run', '--rm', ...ALLOWED(uid), ...flags, image, 'true'], dir);
      assert.notEqual(r.code, 0, flags.join(' '));
      assert.match(r.stderr, /authorization denied by plugin berth-n\d: policy '[^']+' denies container_create: /, flags.join(' '));
      assert.match(r.stderr, field, flags.join(' '));
    }
    // endpoints that could carry host data in or out, or change the daemon, are refused outright
    const endpoints: [string[], RegExp][] = [
      [['commit', id], /denies image_commit|image_commit/],
      [['cp', `${id}:/etc/passwd`, `${dir}/x`], /container_archive/],
      [['swarm', 'init'], /swarm/],
      [['plugin', 'ls'], /plugin/],
      [['pull', '127.0.0.1:5999/other/image:1'], /must be an image from 127\.0\.0\.1:5000/],
      [['network', 'create', 'mynet'], /network_create/],
    ];
    for (const [args, why] of endpoints) {
      const r = dockerAs('alice', jobId, nodeName, args, dir);
      assert.notEqual(r.code, 0, args.join(' '));
      assert.match(r.stderr, /authorization denied by plugin berth-n\d/, args.join(' '));
      assert.match(r.stderr, why, args.join(' '));
    }
    const asRoot = dockerAs('alice', jobId, nodeName, ['run', '--rm', '--user', '0:0', ...ALLOWED(uid).slice(2), image, 'true'], dir);
    assert.match(asRoot.stderr, /authorization denied by plugin berth-n\d: policy '[^']+' denies container_create: .*User/);
    // straight to dockerd (no job endpoint to fill it in), a container without --user is refused
    const bare = dockerTls('alice', jobId, nodeName, ['run', '--rm', '--label', `io.berth.job.id=${jobId}`, '--label', 'io.berth.role=user', ...ALLOWED(uid).slice(2), image, 'true'], dir);
    assert.match(bare.stderr, /authorization denied by plugin berth-n\d: policy '[^']+' denies container_create: .*User/);

    run('scancel', [jobId]);
    waitFor(`job ${jobId} gone`, () => jobState(jobId) === '' || undefined);
    waitFor(`the user's container removed with job ${jobId}`, () => run('docker', ['-H', `unix://${node(nodeName).dockerSocket}`, 'inspect', id]).code !== 0 || undefined);
    assert.ok(!existsSync(`/run/berth/${nodeName}/jobs/${jobId}`), 'the job certificate is gone');
  });

  it('runs a plain docker run with no flags as the job\'s user, within the job, and refuses a flag outside it with the allowed value', () => {
    const { jobId, nodeName, dir } = runningJob('alice', 'docker-plain', 'n3');
    cancel.push(jobId);
    try {
      plainDockerRun(jobId, nodeName, dir);
    } finally {
      run('scancel', [jobId]);
      waitFor(`job ${jobId} gone`, () => jobState(jobId) === '' || undefined);
    }
  });

  function plainDockerRun(jobId: string, nodeName: string, dir: string): void {
    const uid = run('id', ['-u', 'alice']).stdout.trim();
    const groups = run('id', ['-G', 'alice']).stdout.trim().split(' ').sort();
    const image = sandbox().demoImage;
    const id = dockerAs('alice', jobId, nodeName, ['run', '--rm', image, 'sh', '-c', 'id -u; id -G; grep NoNewPrivs /proc/self/status'], dir);
    assert.equal(id.code, 0, id.stderr);
    const [u, g, nnp] = id.stdout.trim().split('\n');
    assert.equal(u, uid);
    assert.deepEqual(g!.split(' ').sort(), groups, 'the user\'s own groups');
    assert.match(nnp!, /^NoNewPrivs:\s+1$/);
    const started = dockerAs('alice', jobId, nodeName, ['run', '-d', image, 'sleep', '100'], dir);
    assert.equal(started.code, 0, started.stderr);
    const rootDocker = (args: string[]) => run('docker', ['-H', `unix://${node(nodeName).dockerSocket}`, ...args]);
    const hostOf = (ref: string) => (JSON.parse(rootDocker(['inspect', ref]).stdout) as { HostConfig: Record<string, unknown> }[])[0]!.HostConfig;
    const mine = hostOf(started.stdout.trim());
    const theJob = hostOf(`berth-${nodeName}-job-${jobId}`);
    assert.equal(mine.NetworkMode, 'host');
    assert.equal(mine.Memory, theJob.Memory, 'the job\'s memory');
    assert.equal(mine.NanoCpus, theJob.NanoCpus, 'the job\'s CPUs');
    assert.ok(Number(mine.Memory) > 0 && Number(mine.NanoCpus) > 0);
    const ps = dockerAs('alice', jobId, nodeName, ['ps', '--format', '{{.ID}}']);
    assert.ok(ps.stdout.split('\n').some((l) => l !== '' && started.stdout.trim().startsWith(l)), `docker ps shows the job's container: ${ps.stdout}`);
    // a flag within the job is the user's; one outside it is refused, saying what is allowed
    const within = dockerAs('alice', jobId, nodeName, ['run', '--rm', '--memory', '64m', image, 'true'], dir);
    assert.equal(within.code, 0, within.stderr);
    const over = dockerAs('alice', jobId, nodeName, ['run', '--rm', '--memory', '100g', image, 'true'], dir);
    assert.notEqual(over.code, 0);
    assert.match(over.stderr, /denies container_create: .*HostConfig\.Memory/);
    assert.match(over.stderr, new RegExp(String(theJob.Memory)), 'the allowed value is named');
  }

  it("gives the job's tasks DOCKER_HOST and the certificate by themselves (TaskProlog)", () => {
    const dir = jobDir('alice', 'docker-taskprolog');
    const out = `${dir}/out.txt`;
    const sub = run('sbatch', ['-N1', '-w', 'n2', '--wait', '--no-container-batch', `--container-image=${sandbox().demoImage}`, '-o', out, '--wrap',
      'echo "host=$DOCKER_HOST"; docker ps --format "name={{.Names}}"; srun sh -c \'echo "task host=$DOCKER_HOST"\''], { user: 'alice', cwd: dir, timeoutMs: 120_000 });
    const text = readFileSync(out, 'utf8');
    assert.equal(sub.code, 0, `${sub.stderr}\n${text}`);
    const jobId = jobIdFrom(sub.stdout);
    assert.match(text, new RegExp(`^host=unix:///run/berth/n2/jobs/${jobId}\\.docker\\.sock$`, 'm'));
    assert.match(text, new RegExp(`^name=berth-n2-job-${jobId}$`, 'm'));
    assert.match(text, new RegExp(`^task host=unix:///run/berth/n2/jobs/${jobId}\\.docker\\.sock$`, 'm'));
  });

  it("refuses another user, another user's container, and the same user once the job has ended", () => {
    const a = runningJob('alice', 'docker-owner');
    cancel.push(a.jobId);
    const b = runningJob('bob', 'docker-other', a.nodeName);
    cancel.push(b.jobId);
    // bob with his own certificate may not touch alice's job container
    const aliceContainer = containersOfJob(a.nodeName, a.jobId, 'running')[0]!;
    const peek = dockerAs('bob', b.jobId, b.nodeName, ['inspect', aliceContainer]);
    assert.notEqual(peek.code, 0);
    assert.match(peek.stderr, /does not belong to your running jobs/);
    // bob can use neither alice's endpoint nor her certificate
    const steal = dockerAs('bob', a.jobId, a.nodeName, ['ps']);
    assert.notEqual(steal.code, 0);
    assert.match(steal.stderr, /permission denied/);
    assert.notEqual(dockerTls('bob', a.jobId, a.nodeName, ['ps']).code, 0);
    run('scancel', [a.jobId]);
    waitFor(`job ${a.jobId} gone`, () => jobState(a.jobId) === '' || undefined);
    const late = dockerAs('alice', a.jobId, a.nodeName, ['ps']);
    assert.notEqual(late.code, 0, 'no Docker access after the job');
  });
});
