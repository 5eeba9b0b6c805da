// Issue 1/7 through the sandbox's real TLS dockerds and Slurm: a job user with a valid job
// certificate and the raw Docker API (curl, any header, any body size, any API version) gets
// no root, no other user's data, nothing past the job's limits, and sees only their own.
import assert from 'node:assert/strict';
import { chmodSync, chownSync, existsSync, mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { node, sandbox, uidOf } from '../support/stack';
import { containersOfJob, jobDir, jobIdFrom, jobState, run, waitFor } from '../support/slurm';

const PATH = '/usr/local/bin:/usr/bin:/bin';
const NODE = 'n1';

interface Job { jobId: string; dir: string; user: string; uid: number }

function startJob(user: string, name: string): Job {
  const dir = jobDir(user, name);
  const sub = run('sbatch', ['-N1', '-w', NODE, '--no-container-batch', `--container-image=${sandbox().demoImage}`, '-o', '/dev/null', '--wrap', 'sleep 600'], { user, cwd: dir });
  assert.equal(sub.code, 0, sub.stderr);
  const jobId = jobIdFrom(sub.stdout);
  waitFor(`job ${jobId} running with its endpoint`, () => (jobState(jobId) === 'RUNNING' && existsSync(`/run/berth/${NODE}/jobs/${jobId}.docker.sock`)) || undefined, 90_000);
  return { jobId, dir, user, uid: uidOf(user) };
}

const root = (args: string[]) => run('docker', ['-H', `unix://${node(NODE).dockerSocket}`, ...args]);
/** the docker CLI as the job's tasks have it (the job's endpoint) */
const docker = (j: Job, args: string[]) => run('docker', args, { user: j.user, cwd: j.dir, env: { PATH, HOME: `/home/${j.user}`, DOCKER_HOST: `unix:///run/berth/${NODE}/jobs/${j.jobId}.docker.sock` } });
/** the raw API at dockerd's TLS port with the job's certificate: anything curl can send */
function curl(j: Job, args: string[]): { status: number; body: string } {
  const cert = `/run/berth/${NODE}/jobs/${j.jobId}`;
  const r = run('curl', ['-s', '-o', '-', '-w', '\n%{http_code}', '--cacert', `${cert}/ca.pem`, '--cert', `${cert}/cert.pem`, '--key', `${cert}/key.pem`, ...args], { user: j.user, env: { PATH } });
  const nl = r.stdout.lastIndexOf('\n');
  return { status: Number(r.stdout.slice(nl + 1)), body: r.stdout.slice(0, nl) };
}
const api = (p: string): string => `https://${node(NODE).dockerTlsAddress}${p}`;
const LIMITS = (uid: number) => ['--user', `${uid}:${uid}`, '--security-opt', 'no-new-privileges', '--memory', '100m', '--memory-swap', '100m', '--cpus', '1', '--network', 'host'];
const IMAGE = () => sandbox().demoImage;

/** a file the job user can read holding `body` padded past dockerd's 1 MiB plugin limit */
function padded(j: Job, name: string, body: Record<string, unknown>): string {
  const file = path.join(j.dir, name);
  writeFileSync(file, JSON.stringify({ ...body, Padding: 'x'.repeat(1_100_000) }));
  chownSync(file, j.uid, j.uid);
  return file;
}

function inspect(id: string): Record<string, any> | undefined { // eslint-disable-line @typescript-eslint/no-explicit-any
  const r = root(['inspect', id]);
  return r.code === 0 ? (JSON.parse(r.stdout) as Record<string, any>[])[0] : undefined; // eslint-disable-line @typescript-eslint/no-explicit-any
}

describe('security: what a job user with the raw Docker API cannot do', { timeout: 600_000 }, () => {
  const jobs: Job[] = [];
  const alice = (): Job => jobs[0]!;
  after(() => {
    for (const j of jobs) run('scancel', [j.jobId]);
  });

  it('starts a job for alice and for bob on one node', () => {
    jobs.push(startJob('alice', 'sec-alice'), startJob('bob', 'sec-bob'));
  });

  it('never gets root from a body or a HostConfig the plugin did not see', () => {
    const j = alice();
    const made = docker(j, ['create', ...LIMITS(j.uid), IMAGE(), 'sleep', '60']);
    assert.equal(made.code, 0, made.stderr);
    const id = made.stdout.trim();
    const big = padded(j, 'priv.json', { Privileged: true, CapAdd: ['ALL'], PidMode: 'host' });
    const attempts: [string, string[]][] = [
      ['a padded v1.23 start', ['-X', 'POST', '-H', 'Content-Type: application/json', '--data-binary', `@${big}`, api(`/v1.23/containers/${id}/start`)]],
      ['a padded v1.41 start', ['-X', 'POST', '-H', 'Content-Type: application/json', '--data-binary', `@${big}`, api(`/v1.41/containers/${id}/start`)]],
      ['a chunked padded start', ['-X', 'POST', '-H', 'Transfer-Encoding: chunked', '-H', 'Content-Type: application/json', '--data-binary', `@${big}`, api(`/v1.23/containers/${id}/start`)]],
      ['a chunked small start', ['-X', 'POST', '-H', 'Transfer-Encoding: chunked', '-H', 'Content-Type: application/json', '--data-binary', '{"Privileged":true}', api(`/v1.23/containers/${id}/start`)]],
      ['a start with a body in an older version', ['-X', 'POST', '-H', 'Content-Type: application/json', '--data-binary', '{"Privileged":true}', api(`/v1.23/containers/${id}/start`)]],
      ['a padded create', ['-X', 'POST', '-H', 'Content-Type: application/json', '--data-binary', `@${padded(j, 'create.json', { Image: IMAGE(), User: '0', HostConfig: { Privileged: true } })}`, api('/v1.41/containers/create')]],
      ['a padded update', ['-X', 'POST', '-H', 'Content-Type: application/json', '--data-binary', `@${padded(j, 'update.json', { PidsLimit: -1, Memory: 0 })}`, api(`/v1.41/containers/${id}/update`)]],
      ['a padded exec', ['-X', 'POST', '-H', 'Content-Type: application/json', '--data-binary', `@${padded(j, 'exec.json', { Cmd: ['id'], User: '0', Privileged: true })}`, api(`/v1.41/containers/${id}/exec`)]],
    ];
    for (const [what, args] of attempts) {
      const r = curl(j, args);
      assert.equal(r.status, 403, `${what}: ${r.status} ${r.body}`);
      assert.match(r.body, /authorization denied by plugin berth-n1: berth denies/, what);
    }
    const after1 = inspect(id)!;
    assert.equal(after1.HostConfig.Privileged, false);
    assert.equal(after1.State.Running, false);
    assert.match(curl(j, [api('/v1.23/containers/json')]).body, /API version 1\.23 is older than 1\.40/);
    // the same container, started plainly, runs as alice
    assert.equal(curl(j, ['-X', 'POST', '-H', 'Content-Length: 0', api(`/v1.41/containers/${id}/start`)]).status, 204);
    assert.equal(inspect(id)!.HostConfig.Privileged, false);
  });

  it('makes no bind volume of a host path, and a named volume serves only the jobs of its creator', () => {
    const [a, b] = jobs as [Job, Job];
    const tag = Date.now();
    const pad = curl(a, ['-X', 'POST', '-H', 'Content-Type: application/json', '--data-binary', `@${padded(a, 'vol.json', { Name: `etc-${tag}`, DriverOpts: { type: 'none', o: 'bind', device: '/etc' } })}`, api('/v1.41/volumes/create')]);
    assert.equal(pad.status, 403, pad.body);
    const plain = docker(a, ['volume', 'create', '--opt', 'type=none', '--opt', 'o=bind', '--opt', 'device=/etc', `etc2-${tag}`]);
    assert.notEqual(plain.code, 0);
    assert.match(plain.stderr, /DriverOpts/);
    for (const v of [`etc-${tag}`, `etc2-${tag}`]) assert.notEqual(root(['volume', 'inspect', v]).code, 0, `${v} was made`);
    assert.equal(docker(b, ['volume', 'create', `bobs-${tag}`]).code, 0);
    const use = docker(a, ['run', '--rm', ...LIMITS(a.uid), '-v', `bobs-${tag}:/x`, IMAGE(), 'true']);
    assert.notEqual(use.code, 0);
    assert.match(use.stderr, new RegExp(`volume bobs-${tag} is not one your job created`));
    const taken = docker(a, ['volume', 'create', `bobs-${tag}`]);
    assert.match(taken.stderr, /exists and is not yours/);
    assert.equal(docker(a, ['volume', 'create', `mine-${tag}`]).code, 0);
    const mine = docker(a, ['run', '--rm', ...LIMITS(a.uid), '-v', `mine-${tag}:/x`, IMAGE(), 'true']);
    assert.equal(mine.code, 0, mine.stderr);
  });

  it("takes no berth name or label, and pulls from no registry outside the site's", () => {
    const j = alice();
    const made = docker(j, ['create', ...LIMITS(j.uid), IMAGE(), 'true']);
    const id = made.stdout.trim();
    const before = inspect(id)!.Name;
    const rename = curl(j, ['-X', 'POST', '-H', 'Content-Type: application/x-www-form-urlencoded', '-H', 'Content-Type: application/json', '--data-binary', `name=berth-${NODE}-job-${j.jobId}-x`, api(`/v1.41/containers/${id}/rename`)]);
    assert.equal(rename.status, 403, rename.body);
    assert.equal(inspect(id)!.Name, before);
    const jobContainer = containersOfJob(NODE, j.jobId, 'running').find((c) => inspect(c)!.Name === `/berth-${NODE}-job-${j.jobId}`)!;
    assert.match(docker(j, ['rename', jobContainer, 'mine']).stderr, /its name is berth's/);
    const fromSrc = curl(j, ['-X', 'POST', '-H', 'Content-Type: application/x-www-form-urlencoded', '-H', 'Content-Type: application/json', '--data-binary', 'fromSrc=http://127.0.0.1:9/x.tar&repo=evil', api('/v1.41/images/create')]);
    assert.equal(fromSrc.status, 403, fromSrc.body);
    assert.match(docker(j, ['pull', '127.0.0.1:5999/other/image:1']).stderr, /must be an image from 127\.0\.0\.1:5000/);
    assert.match(docker(j, ['create', '--name', `berth-${NODE}-job-1`, ...LIMITS(j.uid), IMAGE(), 'true']).stderr, /names starting with berth- are berth's/);
    // straight at dockerd: another job's label, or berth's role, is refused (the endpoint sets the job's own over whatever is given)
    const create = (labels: Record<string, string>) => curl(j, ['-X', 'POST', '-H', 'Content-Type: application/json', '--data-binary', JSON.stringify({
      Image: IMAGE(), Cmd: ['true'], User: `${j.uid}:${j.uid}`, Labels: labels, HostConfig: { SecurityOpt: ['no-new-privileges'], Memory: 104857600, MemorySwap: 104857600, NanoCpus: 1e9, NetworkMode: 'host' },
    }), api('/v1.41/containers/create')]);
    assert.match(create({ 'io.berth.job.id': '1', 'io.berth.role': 'user' }).body, /the label io\.berth\.job\.id is not allowed/);
    assert.match(create({ 'io.berth.job.id': j.jobId, 'io.berth.role': 'job' }).body, /the label io\.berth\.role is not allowed/);
    assert.match(create({}).body, new RegExp(`give --label io\\.berth\\.job\\.id=${j.jobId} --label io\\.berth\\.role=user`));
    assert.equal(create({ 'io.berth.job.id': j.jobId, 'io.berth.role': 'user' }).status, 201);
    const labelled = docker(j, ['create', '--label', 'io.berth.job.id=1', ...LIMITS(j.uid), IMAGE(), 'true']);
    assert.equal(inspect(labelled.stdout.trim())!.Config.Labels['io.berth.job.id'], j.jobId, "the endpoint gives the job's own label");
  });

  it("mounts nothing its user could not open: unreachable paths, a directory swapped for a link, a restart after the swap", () => {
    const j = alice();
    const locked = path.join(j.dir, 'locked');
    mkdirSync(path.join(locked, 'proj'), { recursive: true });
    writeFileSync(path.join(locked, 'proj', 'secret'), 'bob-secret\n');
    chownSync(locked, uidOf('bob'), uidOf('bob'));
    chmodSync(locked, 0o700);
    chmodSync(path.join(locked, 'proj', 'secret'), 0o644);
    for (const flag of [['-v', `${locked}/proj:/x`], ['--mount', `type=bind,src=${locked}/proj,dst=/x`]]) {
      const r = docker(j, ['run', '--rm', ...LIMITS(j.uid), ...flag, IMAGE(), 'cat', '/x/secret']);
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /may not enter .*locked \(mode 700\)/);
      assert.doesNotMatch(r.stdout, /bob-secret/);
    }
    // checked at create, swapped for a symlink before start: judged again as dockerd stored it
    const swap = path.join(j.dir, 'swap');
    mkdirSync(swap);
    chownSync(swap, j.uid, j.uid);
    const id = docker(j, ['create', ...LIMITS(j.uid), '-v', `${swap}:/x`, IMAGE(), 'cat', '/x/secret']).stdout.trim();
    assert.match(id, /^[0-9a-f]{64}$/);
    rmSync(swap, { recursive: true });
    symlinkSync(path.join(locked, 'proj'), swap);
    const started = docker(j, ['start', '-a', id]);
    assert.notEqual(started.code, 0);
    assert.match(started.stderr, /berth refused to start container .* and removed it/);
    assert.doesNotMatch(started.stdout, /bob-secret/);
    assert.equal(inspect(id), undefined, 'the refused container is gone');
    // dockerd restarts a container by itself (no API request, no plugin): berth-runc opens the path as alice
    rmSync(swap);
    mkdirSync(swap);
    writeFileSync(path.join(swap, 'secret'), 'mine\n');
    chownSync(swap, j.uid, j.uid);
    const r = docker(j, ['run', '-d', ...LIMITS(j.uid), '--restart', 'on-failure:3', '-v', `${swap}:/x`, IMAGE(), 'sh', '-c', 'cat /x/secret; sleep 2; exit 1']);
    assert.equal(r.code, 0, r.stderr);
    const rid = r.stdout.trim();
    waitFor('the first run', () => docker(j, ['logs', rid]).stdout.includes('mine') || undefined);
    rmSync(swap, { recursive: true });
    symlinkSync(path.join(locked, 'proj'), swap);
    waitFor('the restart refused', () => /cannot be opened by uid/.test(inspect(rid)?.State?.Error ?? '') || undefined, 30_000);
    assert.doesNotMatch(docker(j, ['logs', rid]).stdout, /bob-secret/);
    assert.match(inspect(rid)!.State.Error, new RegExp(`the host path ${swap} cannot be opened by uid ${j.uid} \\(Permission denied\\)`));
  });

  it("runs a job whose working directory its user cannot open without it, and says so", () => {
    const other = jobDir('bob', 'sec-chdir');
    const proj = path.join(other, 'locked', 'proj');
    mkdirSync(proj, { recursive: true });
    writeFileSync(path.join(proj, 'secret'), 'bob-secret\n');
    chmodSync(path.join(proj, 'secret'), 0o644);
    chmodSync(proj, 0o755);
    chownSync(path.join(other, 'locked'), uidOf('bob'), uidOf('bob'));
    chmodSync(path.join(other, 'locked'), 0o700);
    const out = path.join(alice().dir, 'chdir.out');
    const script = `srun --chdir=/ berth exec -- cat ${proj}/secret; srun --chdir=/ --container-image=${IMAGE()} cat ${proj}/secret; echo done`;
    // on n2: n1's CPUs are held by the two jobs above
    const sub = run('sbatch', ['-N1', '-w', 'n2', '--wait', `--chdir=${proj}`, '--no-container-batch', `--container-image=${IMAGE()}`, '-o', out, '--wrap', script], { user: 'alice', cwd: alice().dir, timeoutMs: 120_000 });
    const jobId = jobIdFrom(sub.stdout);
    const text = readFileSync(out, 'utf8');
    assert.doesNotMatch(text, /bob-secret/);
    assert.match(text, /^done$/m, 'the job ran');
    assert.match(text, new RegExp(`berth: warning: job ${jobId} runs without its working directory in the container: the working directory ${proj}: uid ${alice().uid} may not enter \\S+ \\(mode 700\\)`));
    assert.equal(text.match(/berth: warning: job/g)?.length, 2, 'each step says it once (task 0)');
    const shown = run('scontrol', ['show', 'job', jobId]).stdout;
    assert.match(shown, /AdminComment=berth: warning: job \d+ runs without its working directory/);
  });

  it("keeps the sum over the job's containers within the job, and takes no unbounded setting", () => {
    const j = alice();
    const jobContainer = inspect(`berth-${NODE}-job-${j.jobId}`)!;
    const memory = jobContainer.HostConfig.Memory as number;
    const cpus = (jobContainer.HostConfig.NanoCpus as number) / 1e9;
    const ids = [1, 2, 3].map(() => {
      const r = docker(j, ['run', '-d', '--user', `${j.uid}:${j.uid}`, '--security-opt', 'no-new-privileges', '--memory', String(memory), '--memory-swap', String(memory), '--cpus', String(cpus), '--network', 'host', IMAGE(), 'sleep', '120']);
      assert.equal(r.code, 0, r.stderr);
      return r.stdout.trim();
    });
    const parent = `/berth/${NODE}/job_${j.jobId}`;
    for (const id of [jobContainer.Id as string, ...ids]) {
      const cg = readFileSync(`/proc/${inspect(id)!.State.Pid}/cgroup`, 'utf8');
      assert.match(cg, new RegExp(`:memory:${parent}/${id}$`, 'm'), `container ${id} in the job's cgroup`);
      assert.match(cg, new RegExp(`:pids:${parent}/${id}$`, 'm'));
    }
    assert.equal(Number(readFileSync(`/sys/fs/cgroup/memory${parent}/memory.limit_in_bytes`, 'utf8')), memory);
    assert.equal(Number(readFileSync(`/sys/fs/cgroup/memory${parent}/memory.memsw.limit_in_bytes`, 'utf8')), memory);
    assert.equal(Number(readFileSync(`/sys/fs/cgroup/cpu${parent}/cpu.cfs_quota_us`, 'utf8')), Math.round(cpus * 100_000));
    assert.ok(Number(readFileSync(`/sys/fs/cgroup/pids${parent}/pids.max`, 'utf8')) > 0);
    const refused: [string[], RegExp][] = [
      [['--pids-limit', '-1'], /PidsLimit=-1 means no limit/],
      [['--log-opt', 'max-size=100g'], /max-size=100g is not allowed/],
      [['--log-driver', 'syslog'], /LogConfig\.Type=syslog/],
      [['--runtime', 'runc'], /Runtime=runc is not allowed: containers run with the site's runtime berth/],
      [['--memory-swap', '-1'], /MemorySwap/],
      [['--memory', String(memory * 2)], /Memory/],
      [['--cgroup-parent', '/'], /CgroupParent/],
      [['--ulimit', 'nofile=1048576:1048576'], /Ulimits/],
      [['--ulimit', 'memlock=-1'], /Ulimits/],
      [['--cpu-rt-runtime', '950000'], /CpuRealtimeRuntime/],
      [['--storage-opt', 'size=1T'], /StorageOpt/],
      [['--device', '/dev/sda'], /Devices/],
      [['--gpus', 'all'], /DeviceRequests/],
      [['--oom-kill-disable'], /OomKillDisable/],
    ];
    for (const [flags, why] of refused) {
      const r = docker(j, ['run', '--rm', ...LIMITS(j.uid), ...flags, IMAGE(), 'true']);
      assert.notEqual(r.code, 0, flags.join(' '));
      assert.match(r.stderr, why, flags.join(' '));
    }
    // without --memory-swap Docker would give as much swap again: the job's endpoint sets none beyond the memory
    const noSwap = docker(j, ['run', '-d', '--user', `${j.uid}:${j.uid}`, '--security-opt', 'no-new-privileges', '--memory', '100m', '--cpus', '1', IMAGE(), 'sleep', '60']);
    assert.equal(noSwap.code, 0, noSwap.stderr);
    const swapOf = JSON.parse(run('docker', ['-H', `unix://${node(NODE).dockerSocket}`, 'inspect', noSwap.stdout.trim()]).stdout) as { HostConfig: { Memory: number; MemorySwap: number } }[];
    assert.deepEqual([swapOf[0]!.HostConfig.Memory, swapOf[0]!.HostConfig.MemorySwap], [100 * 2 ** 20, 100 * 2 ** 20]);
    // straight at dockerd nothing is filled in, and the policy refuses the missing setting
    const tlsEnv = { PATH, HOME: `/home/${j.user}`, DOCKER_HOST: `tcp://${node(NODE).dockerTlsAddress}`, DOCKER_TLS_VERIFY: '1', DOCKER_CERT_PATH: `/run/berth/${NODE}/jobs/${j.jobId}` };
    const direct = run('docker', ['run', '--rm', '--label', `io.berth.job.id=${j.jobId}`, '--label', 'io.berth.role=user', '--network', 'host', '--user', `${j.uid}:${j.uid}`, '--security-opt', 'no-new-privileges', '--memory', '100m', '--cpus', '1', IMAGE(), 'true'], { user: j.user, cwd: j.dir, env: tlsEnv });
    assert.match(direct.stderr, /MemorySwap is not set, so Docker gives the container as much swap as memory/);
    const up1 = docker(j, ['update', '--pids-limit', '-1', ids[0]!]);
    assert.match(up1.stderr, /PidsLimit=-1 would remove the limit/);
    const up2 = docker(j, ['update', '--restart', 'always', ids[0]!]);
    assert.match(up2.stderr, /RestartPolicy|restart policy/i);
    assert.equal(docker(j, ['update', '--memory', '50m', '--memory-swap', '50m', ids[0]!]).code, 0, 'lowering is fine');
  });

  it("shows a job user their own job's containers and events, no one else's", () => {
    const [a, b] = jobs as [Job, Job];
    const bobs = docker(b, ['run', '-d', ...LIMITS(b.uid), IMAGE(), 'sleep', '120']);
    assert.equal(bobs.code, 0, bobs.stderr);
    const bobId = bobs.stdout.trim();
    const ps = docker(a, ['ps', '-a', '--no-trunc', '--format', '{{.ID}} {{.Names}}']);
    assert.equal(ps.code, 0, ps.stderr);
    assert.match(ps.stdout, new RegExp(`berth-${NODE}-job-${a.jobId}$`, 'm'));
    assert.doesNotMatch(ps.stdout, new RegExp(bobId));
    assert.doesNotMatch(ps.stdout, new RegExp(`job-${b.jobId}`));
    for (const line of ps.stdout.trim().split('\n')) assert.equal(inspect(line.split(' ')[0]!)!.Config.Labels['io.berth.job.id'], a.jobId, line);
    const ev = docker(a, ['events', '--since', '10m', '--until', '0s', '--format', '{{.Actor.ID}}']);
    assert.equal(ev.code, 0, ev.stderr);
    assert.doesNotMatch(ev.stdout, new RegExp(bobId));
    assert.ok(ev.stdout.trim().length > 0, 'alice sees her own events');
    // straight at dockerd's TLS port: an unfiltered listing is refused, saying what to do
    const raw = curl(a, [api('/v1.41/containers/json?all=1')]);
    assert.equal(raw.status, 403);
    assert.match(raw.body, new RegExp(`filter by the label io\\.berth\\.job\\.id=${a.jobId}`));
    const filtered = curl(a, [api(`/v1.41/containers/json?all=1&filters=${encodeURIComponent(JSON.stringify({ label: [`io.berth.job.id=${a.jobId}`] }))}`)]);
    assert.equal(filtered.status, 200, filtered.body);
    assert.doesNotMatch(filtered.body, new RegExp(bobId));
    assert.equal(curl(a, [api('/v1.41/events?until=0')]).status, 403);
  });

  it("removes the job's containers, volumes and cgroup with the job", () => {
    const j = alice();
    run('scancel', [j.jobId]);
    waitFor(`job ${j.jobId} gone`, () => jobState(j.jobId) === '' || undefined);
    waitFor('no container of the job', () => containersOfJob(NODE, j.jobId).length === 0 || undefined);
    waitFor("the job's cgroup removed", () => !existsSync(`/sys/fs/cgroup/memory/berth/${NODE}/job_${j.jobId}`) || undefined);
    const vols = root(['volume', 'ls', '-q']).stdout;
    assert.doesNotMatch(vols, /^mine-/m);
  });
});
