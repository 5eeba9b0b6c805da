// Job faults fail the job, not the node (docs/operations.md "Job faults and node faults"):
// each way a job's own prologue or step prologue fails after the submit check passed — its
// image removed from the registry, a mount its user can no longer open (berth-runc refuses
// it), a site policy that no longer allows it, the registry down for an image the node does
// not have, a container name taken by another image — through sbatch and through srun. The
// job fails with berth's reason in the batch job's error file or srun's terminal, and in
// `scontrol show job` and sacct (AdminComment); no node is drained. A node fault (the node is
// drained for container jobs with `berth drain`) drains the node with a reason naming berth.
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { chownSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { node, REPO, registryPushLogin, sandbox, uidOf } from '../support/stack';
import { pushAsSite, pushBusyboxImage } from '../support/images';
import { jobDir, jobIdFrom, readIfExists, run, type Run, waitFor } from '../support/slurm';

const PATH = '/usr/local/bin:/usr/bin:/bin';
const NODE = 'n2';
const STAMP = Date.now().toString(36);

/** what a case needs: the options it submits with, and what to change once it is submitted */
interface Prepared {
  options: string[];
  /** after the submit check passed, before the job's prolog runs */
  change: () => void | Promise<void>;
  /** put back what change() did */
  undo?: () => void;
}

interface Case {
  name: string;
  user: string;
  prepare: (variant: string, dir: string) => Prepared;
  /** berth's reason, as the steps print it */
  reason: RegExp;
  /** a fault of a step's prologue, not of the job's: the step's failure says so */
  step?: boolean;
}

/** an image of busybox in /bin and nothing else: no /tmp, where slurmstepd goes when it cannot enter srun's directory */
function pushMinimalImage(tag: string): void {
  const sock = node('n1').dockerSocket;
  const root = mkdtempSync(path.join(os.tmpdir(), 'berth-minimal-'));
  try {
    mkdirSync(path.join(root, 'bin'));
    execFileSync('cp', ['/bin/busybox', path.join(root, 'bin/busybox')]);
    for (const a of ['sh', 'pwd', 'echo', 'true']) symlinkSync('busybox', path.join(root, 'bin', a));
    execFileSync('sh', ['-c', `tar -C ${root} -c . | docker -H unix://${sock} import - ${tag} >/dev/null`]);
    pushAsSite(sock, tag);
    execFileSync('docker', ['-H', `unix://${sock}`, 'rmi', tag], { stdio: 'ignore' });
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

function drained(): string {
  return run('sinfo', ['-h', '-t', 'drain,draining,drained', '-o', '%N']).stdout.trim();
}

function adminComment(jobId: string): string {
  return /^\s*AdminComment=(.*?)\s*$/m.exec(run('scontrol', ['show', 'job', jobId]).stdout)?.[1] ?? '';
}

function sacct(jobId: string): { state: string; adminComment: string } {
  const line = run('sacct', ['-n', '-X', '-P', '-j', jobId, '-o', 'State,AdminComment%1000']).stdout.trim().split('\n')[0] ?? '';
  const [state = '', adminComment = ''] = line.split('|');
  return { state, adminComment };
}

/** the manifest digest the registry holds for TAG (127.0.0.1:5000/NAME:TAG) */
async function manifestDigest(image: string): Promise<string> {
  const { address } = sandbox().registry;
  const [name, tag] = image.slice(address.length + 1).split(':');
  const res = await fetch(`http://${address}/v2/${name}/manifests/${tag}`, {
    method: 'HEAD', headers: { Accept: 'application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json' },
  });
  const digest = res.headers.get('docker-content-digest');
  if (!res.ok || !digest) throw new Error(`no manifest for ${image} (HTTP ${res.status})`);
  return digest;
}

/** removes IMAGE's manifest from the registry, as a site cleaning up old images would (the push address, the site login) */
async function deleteFromRegistry(image: string): Promise<void> {
  const { address, pushAddress } = sandbox().registry;
  const digest = await manifestDigest(image);
  const name = image.slice(address.length + 1).split(':')[0];
  const res = await fetch(`http://${pushAddress}/v2/${name}/manifests/${digest}`, {
    method: 'DELETE', headers: { Authorization: `Basic ${Buffer.from(`site:${registryPushLogin()}`).toString('base64')}` },
  });
  if (res.status !== 202) throw new Error(`DELETE of ${image}@${digest} answered HTTP ${res.status}`);
}

/** a directory owned by root, mode 0755 (every mode-bit check lets the user in), that an ACL then closes to the user */
function closeToUser(dir: string, uid: number): void {
  execFileSync('python3', ['-c', `
import os, struct
none = 0xffffffff
entries = [(0x01, 7, none), (0x02, 0, ${uid}), (0x04, 5, none), (0x10, 5, none), (0x20, 5, none)]
os.setxattr(${JSON.stringify(dir)}, 'system.posix_acl_access', struct.pack('<I', 2) + b''.join(struct.pack('<HHI', *e) for e in entries))
`]);
}

const POLICY = '/usr/local/lib/berth/policies/hpc-default.json';

/** the site changes its policy after a job was submitted: bob's containers may come from the private registry only */
function restrictBob(): () => void {
  const original = readFileSync(POLICY, 'utf8');
  const policies = [JSON.parse(original) as unknown, {
    name: 'e2e-bob-registries', users: ['bob'], registries: ['127.0.0.1:5002'],
    payload_rules: [{ field: 'Image', actions: ['container_create'], required: true, registry_in: '{{registries}}', hint: 'bob\'s jobs use the private registry now' }],
  }];
  const reload = (): void => {
    for (const n of sandbox().nodes) execFileSync('kill', ['-HUP', readFileSync(`/run/berth-sandbox/${n.name}/berthd.pid`, 'utf8').trim()]);
    spawnSleep(1);
  };
  writeFileSync(POLICY, JSON.stringify(policies, null, 2));
  reload();
  return () => {
    writeFileSync(POLICY, original);
    reload();
  };
}

function spawnSleep(seconds: number): void {
  execFileSync('sleep', [String(seconds)]);
}

const REGISTRY_PID = '/run/berth-sandbox/registry.pid';

function stopRegistry(): void {
  const pid = readFileSync(REGISTRY_PID, 'utf8').trim();
  execFileSync('kill', [pid]);
  waitFor('the registry to stop', () => {
    try {
      execFileSync('kill', ['-0', pid], { stdio: 'ignore' });
      return undefined;
    } catch {
      return true;
    }
  }, 10_000);
}

function startRegistry(): void {
  execFileSync(path.join(REPO, 'scripts/sandbox'), ['up', '--no-build'], { stdio: 'ignore' });
}

/** srun, started now, as USER; resolves when it exits */
function srunAsync(user: string, args: string[], cwd: string): Promise<Run> {
  return new Promise((resolve) => {
    const child = spawn('runuser', ['-u', user, '--', 'env', `PATH=${PATH}`, 'srun', ...args], { cwd });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 120_000);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? -1, stdout, stderr });
    });
  });
}

/** a plain job holding every CPU of NODE, so that the next job there waits */
function blockNode(user: string, dir: string): string {
  const sub = run('sbatch', ['-N1', '-w', NODE, '-c', '2', '--mem=100', '-o', '/dev/null', '--wrap', 'sleep 300'], { user, cwd: dir, env: { PATH } });
  assert.equal(sub.code, 0, sub.stderr);
  const id = jobIdFrom(sub.stdout);
  waitFor(`blocker ${id} running`, () => run('squeue', ['-h', '-j', id, '-o', '%T']).stdout.trim() === 'RUNNING' || undefined);
  return id;
}

describe('job faults fail the job, not the node', { timeout: 900_000 }, () => {
  const demo = sandbox().demoImage;
  const other = `127.0.0.1:5000/berth/fault-other:${STAMP}`;
  const cancel: string[] = [];
  let stoppedRegistry = false;

  before(() => {
    assert.equal(drained(), '', 'no node is drained before these tests (resume it first)');
    pushBusyboxImage(other, { 'etc/fault-other': 'other\n' });
  });
  after(() => {
    for (const id of cancel) run('scancel', [id]);
    if (stoppedRegistry) startRegistry();
    for (const n of sandbox().nodes) run('scontrol', ['update', `nodename=${n.name}`, 'state=resume']);
    run('berth', ['resume', '--nodes', 'n[1-3]']);
  });

  const cases: Case[] = [
    {
      name: 'its image removed from the registry after submit',
      user: 'alice',
      prepare: (variant) => {
        const image = `127.0.0.1:5000/berth/fault-gone-${variant}:${STAMP}`;
        pushBusyboxImage(image, {});
        return { options: [`--container-image=${image}`], change: () => deleteFromRegistry(image) };
      },
      reason: /image '127\.0\.0\.1:5000\/berth\/fault-gone-\w+@sha256:[0-9a-f]{64}' was not found in registry 127\.0\.0\.1:5000 \(.*manifest unknown.*\); check the name and tag, or push the image there first/,
    },
    {
      name: 'a mount its user can no longer open (berth-runc refuses it)',
      user: 'alice',
      prepare: (_variant, dir) => {
        const data = path.join(dir, 'shared-data');
        mkdirSync(data, { mode: 0o755 });
        chownSync(data, 0, 0);
        return { options: [`--container-image=${demo}`, `--container-mounts=${data}:/data:ro`], change: () => closeToUser(data, uidOf('alice')) };
      },
      reason: /the host path \/home\/alice\/berth-tests\/\S+\/shared-data cannot be opened by uid \d+ \(Permission denied\), and a container may mount only what its user can open; make it readable for you, or leave it out of --container-mounts/,
    },
    {
      name: 'a site policy that no longer allows it',
      user: 'bob',
      prepare: () => {
        let undo: (() => void) | undefined;
        return { options: [`--container-image=${demo}`], change: () => void (undo = restrictBob()), undo: () => undo?.() };
      },
      reason: /policy 'e2e-bob-registries' denies container_create: Image=127\.0\.0\.1:5000\/berth\/demo@sha256:[0-9a-f]{64} is not allowed: it must be an image from 127\.0\.0\.1:5002 .*\(bob's jobs use the private registry now\)/,
    },
    {
      name: 'the registry down for a pinned image the node does not have',
      user: 'alice',
      prepare: (variant) => {
        const image = `127.0.0.1:5000/berth/fault-regdown-${variant}:${STAMP}`;
        pushBusyboxImage(image, {});
        return {
          options: [`--container-image=${image}`],
          change: () => {
            stoppedRegistry = true;
            stopRegistry();
          },
          undo: () => {
            startRegistry();
            stoppedRegistry = false;
          },
        };
      },
      reason: /registry 127\.0\.0\.1:5000 could not be reached for image '127\.0\.0\.1:5000\/berth\/fault-regdown-\w+@sha256:[0-9a-f]{64}' \(.*\); ask the site admins to check the registry/,
    },
  ];

  for (const c of cases) {
    it(`sbatch: ${c.name}: the job fails with the reason in its error file and AdminComment, and no node drains`, async () => {
      const dir = jobDir(c.user, `fault-sbatch-${c.name.split(' ').slice(0, 3).join('-')}`);
      const p = c.prepare('sbatch', dir);
      const err = path.join(dir, 'err.txt');
      const out = path.join(dir, 'out.txt');
      const sub = run('sbatch', ['--hold', '-N1', '-w', NODE, ...p.options, '--no-container-batch', '-o', out, '-e', err, '--wrap', 'echo batch-started; srun berth exec -- echo step-ran'],
        { user: c.user, cwd: dir, env: { PATH } });
      assert.equal(sub.code, 0, `the submit check passes: ${sub.stderr}`);
      const jobId = jobIdFrom(sub.stdout);
      cancel.push(jobId);
      try {
        await p.change();
        assert.equal(run('scontrol', ['release', jobId]).code, 0);
        let comment = '';
        waitFor(`job ${jobId} to end`, () => {
          comment = adminComment(jobId) || comment;
          const state = run('squeue', ['-h', '-j', jobId, '-o', '%T']).stdout.trim();
          return (state === '' || /FAILED|COMPLETED/.test(state)) || undefined;
        }, 120_000);
        comment = adminComment(jobId) || comment;
        const text = readIfExists(err);
        assert.match(text, new RegExp(`^berth: job ${jobId} fails on ${NODE}, no step runs there: ${c.reason.source}$`, 'm'), `error file:\n${text}`);
        assert.doesNotMatch(readIfExists(out), /batch-started|step-ran/, 'the batch script did not run');
        assert.doesNotMatch(text, /slurmstepd/, "berth's line is the only one");
        assert.match(comment, new RegExp(`^berth: job ${jobId} failed on ${NODE} before its first step: ${c.reason.source}`), `AdminComment: ${comment}`);
        const acct = waitFor(`sacct for ${jobId}`, () => {
          const a = sacct(jobId);
          return a.state && !/RUNNING|PENDING/.test(a.state) && a.adminComment ? a : undefined;
        }, 30_000);
        assert.equal(acct.state, 'FAILED');
        assert.match(acct.adminComment, c.reason);
        assert.equal(drained(), '', 'no node is drained');
      } finally {
        p.undo?.();
      }
    });

    it(`srun: ${c.name}: srun fails with the reason on the terminal, and no node drains`, async () => {
      const dir = jobDir(c.user, `fault-srun-${c.name.split(' ').slice(0, 3).join('-')}`);
      const p = c.prepare('srun', dir);
      const blocker = blockNode(c.user, dir);
      cancel.push(blocker);
      const name = `fault-${STAMP}-${Math.random().toString(36).slice(2, 8)}`;
      try {
        const done = srunAsync(c.user, ['-N1', '-w', NODE, `--job-name=${name}`, ...p.options, 'echo', 'task-ran'], dir);
        const jobId = waitFor(`srun's job ${name} to wait for ${NODE}`, () => {
          const line = run('squeue', ['-h', '-n', name, '-o', '%i %T']).stdout.trim();
          return /^\d+ PENDING$/.test(line) ? line.split(' ')[0] : undefined;
        }, 60_000);
        cancel.push(jobId);
        await p.change();
        run('scancel', [blocker]);
        let comment = '';
        const poll = setInterval(() => (comment = adminComment(jobId) || comment), 500);
        const r = await done.finally(() => clearInterval(poll));
        comment = adminComment(jobId) || comment;
        assert.notEqual(r.code, 0, 'srun fails');
        assert.doesNotMatch(r.stdout, /task-ran/);
        assert.match(r.stderr, new RegExp(`^berth: job ${jobId} fails on ${NODE}, no step runs there: ${c.reason.source}$`, 'm'), `srun said:\n${r.stderr}`);
        assert.match(comment, c.reason, `AdminComment: ${comment}`);
        assert.doesNotMatch(r.stderr, /slurmstepd/, "berth's line is the only one from the node");
        assert.equal(drained(), '', 'no node is drained');
      } finally {
        run('scancel', [blocker]);
        p.undo?.();
      }
    });
  }

  it('sbatch: a container name taken by another image fails the step and the job, and no node drains', () => {
    const dir = jobDir('alice', 'fault-name-sbatch');
    const err = path.join(dir, 'err.txt');
    const sub = run('sbatch', ['--wait', '-N1', '-w', NODE, '--no-container-batch', `--container-image=${demo}`, '--container-name=box', '-o', path.join(dir, 'out.txt'), '-e', err,
      '--wrap', `srun --container-name=box --container-image=${other} echo joined`], { user: 'alice', cwd: dir, env: { PATH } });
    const jobId = jobIdFrom(sub.stdout);
    assert.notEqual(sub.code, 0, 'the job fails');
    const text = readIfExists(err);
    const reason = `job ${jobId}: the container named 'box' runs 127\\.0\\.0\\.1:5000/berth/demo@sha256:[0-9a-f]{64}, not 127\\.0\\.0\\.1:5000/berth/fault-other@sha256:[0-9a-f]{64}; drop --container-image to join it, or use another name`;
    assert.match(text, new RegExp(`^berth: job ${jobId} step 0 on ${NODE}: ${reason}$`, 'm'), text);
    assert.doesNotMatch(text, /slurmstepd/, "berth's line is the only one from the node");
    assert.doesNotMatch(readIfExists(path.join(dir, 'out.txt')), /joined/);
    const acct = waitFor(`sacct for ${jobId}`, () => {
      const a = sacct(jobId);
      return a.state && a.adminComment ? a : undefined;
    }, 30_000);
    assert.equal(acct.state, 'FAILED');
    assert.match(acct.adminComment, new RegExp(`^berth: step ${jobId}\\.0 failed on ${NODE}: the container named 'box' runs`));
    assert.equal(drained(), '', 'no node is drained');
  });

  it('srun (salloc): a container name taken by another image fails srun with the reason on the terminal, and no node drains', () => {
    const dir = jobDir('alice', 'fault-name-srun');
    const r = run('salloc', ['-N1', '-w', NODE, `--container-image=${demo}`, '--container-name=box', 'srun', '--container-name=box', `--container-image=${other}`, 'echo', 'joined'],
      { user: 'alice', cwd: dir, env: { PATH } });
    assert.notEqual(r.code, 0);
    assert.doesNotMatch(r.stdout, /joined/);
    assert.match(r.stderr, new RegExp(`^berth: job \\d+ step 0 on ${NODE}: job \\d+: the container named 'box' runs .*; drop --container-image to join it, or use another name$`, 'm'), r.stderr);
    assert.equal(drained(), '', 'no node is drained');
  });

  it('a 2-node job whose image is cached on one node only: the other node fails every step there, and berth exec says why', async () => {
    const dir = jobDir('alice', 'fault-exec');
    const image = `127.0.0.1:5000/berth/fault-half:${STAMP}`;
    pushBusyboxImage(image, {});
    assert.equal(run('berth', ['pull', image, '--nodes', 'n1']).code, 0, 'cached on n1');
    const out = path.join(dir, 'out.txt');
    const err = path.join(dir, 'err.txt');
    const sub = run('sbatch', ['--hold', '-N2', '-w', `n1,${NODE}`, '--no-container-batch', `--container-image=${image}`, '-o', out, '-e', err,
      '--wrap', 'srun -N2 -l echo step-ran; echo "srun-exit=$?"; sleep 60'], { user: 'alice', cwd: dir, env: { PATH } });
    assert.equal(sub.code, 0, sub.stderr);
    const jobId = jobIdFrom(sub.stdout);
    cancel.push(jobId);
    await deleteFromRegistry(image);
    run('scontrol', ['release', jobId]);
    waitFor('the job\'s srun to end', () => /srun-exit=/.test(readIfExists(out)) || undefined, 90_000);
    const text = readIfExists(out);
    assert.match(text, /^0: step-ran$/m, 'the task on n1 ran in its container');
    assert.doesNotMatch(text, /^1: step-ran$/m, 'the task on n2 did not');
    assert.match(text, /^srun-exit=[1-9]/m, 'the step failed');
    assert.match(readIfExists(err), new RegExp(`berth: job ${jobId} fails on ${NODE}, no step runs there: image '127\\.0\\.0\\.1:5000/berth/fault-half@sha256:[0-9a-f]{64}' was not found in registry`));
    assert.ok(existsSync(`/run/berth/${NODE}/faults/${jobId}`), 'the fault is recorded on n2');
    assert.ok(!existsSync(`/run/berth/n1/faults/${jobId}`), 'and not on n1');
    const r = run('berth', ['exec', '--', 'true'], { user: 'alice', cwd: dir, env: { PATH, SLURM_JOB_ID: jobId, SLURMD_NODENAME: NODE } });
    assert.equal(r.code, 125);
    assert.match(r.stderr, new RegExp(`job ${jobId} has no container on ${NODE}: it could not be made when the job started: image '127\\.0\\.0\\.1:5000/berth/fault-half@sha256:[0-9a-f]{64}' was not found`));
    const bob = run('berth', ['exec', '--', 'true'], { user: 'bob', cwd: '/', env: { PATH, SLURM_JOB_ID: jobId, SLURMD_NODENAME: NODE } });
    assert.match(bob.stderr, /has no container on node/, "another user is not told alice's reason");
    assert.equal(drained(), '', 'no node is drained');
    run('scancel', [jobId]);
    waitFor(`the fault of job ${jobId} to go with its epilog`, () => !existsSync(`/run/berth/${NODE}/faults/${jobId}`) || undefined, 60_000);
  });

  it('a node fault (the node drained for container jobs) drains the node in Slurm with a reason naming berth', () => {
    const dir = jobDir('alice', 'fault-node');
    assert.equal(run('berth', ['drain', '--nodes', 'n3', '--reason', 'e2e node fault']).code, 0);
    try {
      const sub = run('sbatch', ['--no-requeue', '-N1', '-w', 'n3', `--container-image=${demo}`, '-o', '/dev/null', '--wrap', 'true'], { user: 'alice', cwd: dir, env: { PATH } });
      const jobId = jobIdFrom(sub.stdout);
      cancel.push(jobId);
      const reason = waitFor('n3 drained', () => {
        const r = run('sinfo', ['-h', '-R', '-n', 'n3', '-o', '%E']).stdout.trim();
        return r || undefined;
      }, 60_000);
      assert.match(reason, new RegExp(`^berth: node drained: node n3 is drained for container jobs since \\S+ \\(reason: e2e node fault\\); job ${jobId} was not started here.* \\(job ${jobId}\\)$`));
      assert.equal(run('sinfo', ['-h', '-R']).stdout.slice(0, 20), 'berth: node drained:', 'sinfo -R shows berth and the cause in its 20 characters');
      assert.equal(drained(), 'n3', 'only n3');
    } finally {
      run('berth', ['resume', '--nodes', 'n3']);
      run('scontrol', ['update', 'nodename=n3', 'state=resume']);
    }
  });

  it("starts a native step in / when srun's directory is not in the image, as it says, or fails it with that one message", () => {
    const dir = jobDir('alice', 'fault-chdir');
    // the tools-like image has /tmp, where slurmstepd goes when it cannot enter the directory: berth takes the task on to /
    const starts = run('salloc', ['-N1', '-w', NODE, `--container-image=${other}`, 'srun', '--chdir=/usr/share', `--container-image=${other}`, 'pwd'], { user: 'alice', cwd: dir, env: { PATH } });
    assert.equal(starts.code, 0, starts.stderr);
    assert.equal(starts.stdout.trim(), '/');
    assert.match(starts.stderr, /^berth: \/usr\/share does not exist in container berth-n2-job-\d+; the task starts in \/$/m);
    assert.doesNotMatch(starts.stderr, /couldn't chdir/, "slurmstepd's own fallback message is not shown: it is not what happens");
    // an image without /tmp: Slurm's fallback would kill the task ("couldn't chdir to /tmp either. dying"), so berth fails it first, with one message
    const minimal = `127.0.0.1:5000/berth/fault-minimal:${STAMP}`;
    pushMinimalImage(minimal);
    const fails = run('salloc', ['-N1', '-w', NODE, `--container-image=${minimal}`, 'srun', '--chdir=/tmp', `--container-image=${minimal}`, 'pwd'], { user: 'alice', cwd: dir, env: { PATH } });
    assert.notEqual(fails.code, 0);
    assert.equal(fails.stdout.trim(), '');
    assert.match(fails.stderr, /^berth: the tasks of step \d+\.0 do not start: their directory \/tmp does not exist in container berth-n2-job-\d+; run srun from a directory the image has \(srun --chdir=\/ \.\.\.\)$/m);
    assert.doesNotMatch(fails.stderr, /couldn't chdir|dying|spank_task_init_privileged failed/);
    assert.equal(drained(), '', 'no node is drained');
  });
});
