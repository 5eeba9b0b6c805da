// Fault drills (issue 12) for the node itself rather than berthd: the engine's disk filling up
// during a prolog's pull (a node fault: the node drains with berth's reason, the job is
// requeued and held with the reason in its AdminComment), and a node "rebooted" under a
// running 2-node job (every daemon of one node SIGKILLed, its /run directories gone, the
// daemons started again as `scripts/sandbox up --no-build` does). Each drill ends with the
// invariants of test/support/invariants.ts.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, readlinkSync, rmSync, statfsSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { alive, BerthdLog, berthdPid, ensureBerthd, sleep, until, waitServing } from '../support/berthd';
import { forgetImage, pushPaddedImage } from '../support/images';
import { assertDrillInvariants, drainedNodes, jobFields, jobRecordsOn } from '../support/invariants';
import { containersOfJob, jobDir, jobIdFrom, readIfExists, run, resumeNodes } from '../support/slurm';
import { node, REPO, sandbox } from '../support/stack';

const NODES = ['n1', 'n2', 'n3'];
const STATE_DIR = '/var/lib/berth-sandbox';
const RUN_DIR = '/run/berth-sandbox';
const BERTH_RUN_DIR = '/run/berth';
const LOG_DIR = '/var/log/berth-sandbox';
/** the node whose engine has a small disk of its own (scripts/sandbox.d/docker.sh, SMALL_DISK_NODE) */
const SMALL = 'n3';
const FULL_REPO = '127.0.0.1:5000/berth/drill-diskfull';

const PATH = '/usr/local/bin:/usr/bin:/bin';
const secs = (ms: number): string => `${(ms / 1000).toFixed(1)} s`;
const MiB = 1024 * 1024;

function sbatch(args: string[], dir: string): string {
  const sub = run('sbatch', ['--parsable', ...args], { user: 'alice', cwd: dir });
  assert.equal(sub.code, 0, `sbatch failed: ${sub.stderr}`);
  return jobIdFrom(`Submitted batch job ${sub.stdout.trim().split(';')[0]}`);
}

function adminComment(jobId: string): string {
  return /^\s*AdminComment=(.*?)\s*$/m.exec(run('scontrol', ['show', 'job', jobId]).stdout)?.[1] ?? '';
}

function drainReason(n: string): string {
  return run('sinfo', ['-h', '-R', '-n', n, '-o', '%E']).stdout.trim();
}

function freeBytes(dir: string): number {
  const st = statfsSync(dir);
  return st.bavail * st.bsize;
}

const docker = (n: string, ...args: string[]): string => execFileSync('docker', ['-H', `unix://${node(n).dockerSocket}`, ...args], { encoding: 'utf8' }).trim();

/** a normal container job on node n: srun with the image runs its task in the container (a native container step) */
function normalJob(n: string, name: string): { jobId: string; out: string } {
  const dir = jobDir('alice', name);
  const r = run('srun', ['-N1', '-w', n, `--container-image=${sandbox().demoImage}`, 'sh', '-c', 'echo job=$SLURM_JOB_ID; cat /etc/berth-demo-release'], { user: 'alice', cwd: dir, env: { PATH } });
  assert.equal(r.code, 0, `a normal job on ${n}: ${r.stderr}`);
  return { jobId: /job=(\d+)/.exec(r.stdout)![1]!, out: r.stdout };
}

// ---- the "reboot": every process of one node's daemons, their mounts and /run directories

interface Proc {
  pid: number;
  ppid: number;
  cmd: string[];
}

function procs(): Proc[] {
  const out: Proc[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      out.push({ pid: Number(d), ppid, cmd: readFileSync(`/proc/${d}/cmdline`, 'utf8').split('\0').filter(Boolean) });
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

function pidFromFile(file: string): number | undefined {
  const pid = existsSync(file) ? Number(readFileSync(file, 'utf8').trim()) : NaN;
  return Number.isInteger(pid) && pid > 0 && existsSync(`/proc/${pid}`) ? pid : undefined;
}

/** whether process pid has file f open (slurmstepd keeps its node's slurmd log open) */
function hasOpen(pid: number, f: string): boolean {
  try {
    return readdirSync(`/proc/${pid}/fd`).some((fd) => {
      try {
        return readlinkSync(`/proc/${pid}/fd/${fd}`) === f;
      } catch {
        return false;
      }
    });
  } catch {
    return false;
  }
}

/** every process a reboot of sandbox node n ends: its slurmd, slurmstepds, dockerd, containerd, shims, berthd, and all their descendants */
function nodeProcesses(n: string): { roots: Record<string, number[]>; all: number[] } {
  const ps = procs();
  const roots: Record<string, number[]> = {
    slurmd: [pidFromFile(`${RUN_DIR}/${n}/slurmd.pid`)].filter((p): p is number => p !== undefined),
    slurmstepd: ps.filter((p) => /^slurmstepd/.test(p.cmd[0] ?? '') && hasOpen(p.pid, `${LOG_DIR}/${n}/slurmd.log`)).map((p) => p.pid),
    dockerd: [pidFromFile(`${RUN_DIR}/${n}/docker.pid`)].filter((p): p is number => p !== undefined),
    containerd: ps.filter((p) => p.cmd[0] === 'containerd' && p.cmd.some((a) => a.startsWith(`${RUN_DIR}/${n}/docker-exec/`))).map((p) => p.pid),
    shims: ps.filter((p) => /containerd-shim/.test(p.cmd[0] ?? '') && p.cmd[p.cmd.indexOf('-namespace') + 1] === `berth-${n}`).map((p) => p.pid),
    berthd: [berthdPid(n)].filter((p): p is number => p !== undefined),
  };
  const all = new Set(Object.values(roots).flat());
  for (let grew = true; grew;) {
    grew = false;
    for (const p of ps) if (all.has(p.ppid) && !all.has(p.pid)) { all.add(p.pid); grew = true; }
  }
  return { roots, all: [...all] };
}

/** the mounts a reboot would not bring back: dockerd's under its data-root and exec-root, and anything under the node's /run directories */
function unmountNode(n: string): string[] {
  const prefixes = [`${RUN_DIR}/${n}/`, `${BERTH_RUN_DIR}/${n}/`, `${STATE_DIR}/${n}/docker/`];
  const mounts = readFileSync('/proc/mounts', 'utf8').split('\n').map((l) => l.split(' ')[1] ?? '')
    .filter((m) => prefixes.some((p) => m.startsWith(p)));
  // dockerd's own bind mount of its data-root onto itself (over n3's disk it sits above the loop mount: one of two)
  const root = `${STATE_DIR}/${n}/docker`;
  const rootMounts = readFileSync('/proc/mounts', 'utf8').split('\n').filter((l) => l.split(' ')[1] === root).length;
  const own = n === SMALL ? 1 : 0;
  for (let i = own; i < rootMounts; i++) mounts.push(root);
  for (const m of mounts.sort().reverse()) {
    if (spawnSync('umount', [m]).status !== 0) spawnSync('umount', ['-l', m]);
  }
  return mounts;
}

describe('fault drills: the node itself', { timeout: 300_000 }, () => {
  const cancel: string[] = [];
  before(() => {
    sandbox();
    resumeNodes();
  });
  after(async () => {
    for (const id of cancel) run('scancel', [id]);
    // every daemon running again (a drill cut off halfway leaves some stopped), every node in service
    const up = run(path.join(REPO, 'scripts/sandbox'), ['up', '--no-build'], { timeoutMs: 180_000 });
    if (up.code !== 0) console.error(up.stdout, up.stderr);
    await ensureBerthd(NODES);
    run('berth', ['resume', '--nodes', 'n[1-3]']);
    resumeNodes();
  });

  it(`(1) ${SMALL}'s engine disk fills up during a prolog's pull: a node fault, the node drains with the cause, a normal job runs after the clean-up`, async (t) => {
    const dataRoot = `${STATE_DIR}/${SMALL}/docker`;
    assert.equal(docker(SMALL, 'info', '--format', '{{.DockerRootDir}} {{.Driver}}'), `${dataRoot} overlay2`);
    const free0 = freeBytes(dataRoot);
    const total = statfsSync(dataRoot).blocks * statfsSync(dataRoot).bsize;
    assert.ok(total < 2048 * MiB, `${SMALL}'s data-root is a small disk of its own (${(total / MiB).toFixed(0)} MiB)`);
    // bigger than the free space, in steps of 32 MiB so that later runs find it in the registry
    const mb = Math.ceil(free0 / MiB / 32) * 32 + 32;
    const tag = `${FULL_REPO}:${mb}`;
    const pushStart = Date.now();
    await pushPaddedImage(tag, mb);
    const pushMs = Date.now() - pushStart;
    forgetImage(node(SMALL).dockerSocket, FULL_REPO);

    const since = new Date().toISOString();
    const dir = jobDir('alice', 'drill-diskfull');
    const log = new BerthdLog(SMALL);
    const submitted = Date.now();
    const jobId = sbatch(['-N1', '-w', SMALL, '--no-container-batch', `--container-image=${tag}`, '-o', path.join(dir, 'out.txt'), '--wrap', 'srun berth exec -- true'], dir);
    cancel.push(jobId);
    const reason = await until(`${SMALL} drained`, () => drainReason(SMALL) || undefined, 120_000, 200);
    const drainedAfter = Date.now() - submitted;
    assert.match(reason, /^berth: disk full: /, `the drain reason names berth and the cause: ${reason}`);
    assert.match(reason, /no space left/i);
    assert.equal(run('sinfo', ['-h', '-R', '-n', SMALL]).stdout.slice(0, 20), 'berth: disk full: th', 'sinfo -R shows berth and the cause in its 20 characters');
    const failed = log.find((l) => l.message === 'prologue failed' && l.job === jobId);
    assert.equal(failed?.code, 'DISK_FULL', `berthd's log: ${JSON.stringify(failed)}`);
    assert.equal(failed?.fault, 'node');
    // the job: requeued and held, the reason in its AdminComment
    const held = await until(`job ${jobId} requeued and held`, () => {
      const f = jobFields(jobId);
      return f.JobState === 'PENDING' && /held/i.test(run('squeue', ['-h', '-j', jobId, '-o', '%r']).stdout) ? f : undefined;
    }, 60_000, 200);
    assert.equal(held.JobState, 'PENDING');
    const comment = adminComment(jobId);
    assert.match(comment, /no space left/i, `AdminComment: ${comment}`);
    assert.deepEqual(drainedNodes().map((l) => l.split(' ')[0]), [SMALL], 'only the full node drained');
    const freeFailed = freeBytes(dataRoot);

    // the user gives up on it; the admins clean up
    assert.equal(run('scancel', [jobId], { user: 'alice' }).code, 0);
    assertDrillInvariants([{ jobId, nodes: [], since, state: 'CANCELLED', toldWhy: { pattern: /berth.*no space left/i, where: () => adminComment(jobId) } }], { drained: [SMALL] });
    assert.deepEqual(containersOfJob(SMALL, jobId), []);
    assert.deepEqual(jobRecordsOn(SMALL, { jobId, since }), [], 'no accounting record: no container of the job was made on the node');
    const cleanStart = Date.now();
    const prune = run('berth', ['prune', '--nodes', SMALL, '--all']);
    assert.equal(prune.code, 0, prune.stderr);
    docker(SMALL, 'image', 'prune', '-f');
    forgetImage(node(SMALL).dockerSocket, FULL_REPO);
    const tmp = path.join(dataRoot, 'tmp');
    const leftInTmp = existsSync(tmp) ? readdirSync(tmp) : [];
    for (const f of leftInTmp) rmSync(path.join(tmp, f), { recursive: true, force: true });
    const freeClean = freeBytes(dataRoot);
    assert.ok(freeClean >= free0 - 8 * MiB, `the clean-up gave the space back (${(free0 / MiB).toFixed(0)} MiB free before, ${(freeClean / MiB).toFixed(0)} MiB after)`);
    assert.equal(run('berth', ['resume', '--nodes', SMALL]).code, 0);
    assert.equal(run('scontrol', ['update', `nodename=${SMALL}`, 'state=resume']).code, 0);
    const after = normalJob(SMALL, 'drill-diskfull-after');
    const recoveredMs = Date.now() - cleanStart;
    assert.match(after.out, /berth demo image 1\.0/);
    t.diagnostic(`${SMALL}'s disk ${(total / MiB).toFixed(0)} MiB, ${(free0 / MiB).toFixed(0)} MiB free; image of ${mb} MB (pushed in ${secs(pushMs)}); `
      + `node drained ${secs(drainedAfter)} after sbatch; free during the failure ${(freeFailed / MiB).toFixed(0)} MiB, after clean-up ${(freeClean / MiB).toFixed(0)} MiB `
      + `(${leftInTmp.length} file(s) left in dockerd's tmp); clean-up, resume and a normal job: ${secs(recoveredMs)}; drain reason: ${reason.slice(0, 160)}`);
    assertDrillInvariants([{ jobId: after.jobId, nodes: [SMALL], since, state: 'COMPLETED' }]);
  });

  it('(2) a node "rebooted" under a 2-node job: berthd starts with /run gone, the node is not drained, the job ends clean, a new job runs there', async (t) => {
    const victim = 'n2';
    const other = 'n1';
    const since = new Date().toISOString();
    const dir = jobDir('alice', 'drill-reboot');
    const jobId = sbatch(['-N2', '-w', `${other},${victim}`, '--no-container-batch', `--container-image=${sandbox().demoImage}`, '-o', path.join(dir, 'out.txt'), '--wrap', 'srun berth exec -- sleep 600'], dir);
    cancel.push(jobId);
    for (const n of [other, victim]) {
      await until(`job ${jobId}'s sleep running on ${n}`, () => {
        const [c] = containersOfJob(n, jobId, 'running');
        return c !== undefined && /sleep 600/.test(docker(n, 'top', c));
      }, 60_000, 200);
    }
    const log = new BerthdLog(victim);
    // the power goes
    const { roots, all } = nodeProcesses(victim);
    for (const what of ['slurmd', 'dockerd', 'containerd', 'berthd', 'slurmstepd', 'shims']) assert.ok(roots[what]!.length > 0, `found ${victim}'s ${what}`);
    for (const pid of all) try { process.kill(pid, 'SIGSTOP'); } catch { /* gone */ }
    for (const pid of all) try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
    const killedAt = Date.now();
    await until(`every process of ${victim} gone`, () => all.every((p) => !alive(p)), 20_000, 50);
    const unmounted = unmountNode(victim);
    rmSync(`${RUN_DIR}/${victim}`, { recursive: true, force: true });
    rmSync(`${BERTH_RUN_DIR}/${victim}`, { recursive: true, force: true });
    t.diagnostic(`killed ${all.length} processes of ${victim} (${Object.entries(roots).map(([k, v]) => `${k} ${v.length}`).join(', ')}), unmounted ${unmounted.length}, removed ${RUN_DIR}/${victim} and ${BERTH_RUN_DIR}/${victim}`);
    const slurmWhileDown = jobFields(jobId).JobState;

    // the node comes back: its daemons start as at boot
    const bootAt = Date.now();
    const up = run(path.join(REPO, 'scripts/sandbox'), ['up', '--no-build'], { timeoutMs: 180_000 });
    assert.equal(up.code, 0, `sandbox up --no-build: ${up.stdout}\n${up.stderr}`);
    assert.doesNotMatch(up.stdout, /resuming/, 'no node needed resuming');
    const upMs = Date.now() - bootAt;
    const servedAt = await waitServing(victim);
    const started = log.lines();
    const errors = started.filter((l) => l.level === 'error');
    assert.deepEqual(errors.map((l) => l.message), [], `berthd ${victim} starts cleanly with /run gone: ${JSON.stringify(errors)}`);
    const reconciled = started.find((l) => l.message === 'reconciled with Slurm');
    assert.deepEqual(drainedNodes(), [], 'no node drained by the reboot');
    const status = JSON.parse(run('berth', ['status', '--node', victim, '--json']).stdout) as { nodes: { result?: { state: string } }[] };
    assert.equal(status.nodes[0]?.result?.state, 'AGENT_STATE_SERVING', `berthd ${victim} serving, not drained for container jobs`);
    const stateBack = await until(`${victim} responding in Slurm`, () => {
      const s = run('sinfo', ['-h', '-n', victim, '-o', '%T']).stdout.trim();
      return /\*$/.test(s) ? undefined : s;
    }, 60_000, 200);
    const jobBack = jobFields(jobId).JobState;
    t.diagnostic(`Slurm's job ${jobId}: ${slurmWhileDown} while ${victim} was down, ${jobBack} after it came back (node ${stateBack}); `
      + `sandbox up --no-build took ${secs(upMs)}; berthd serving ${secs(servedAt - killedAt)} after the kill; reconcile: ${JSON.stringify(reconciled ?? null)}`);

    // Slurm 22.05 keeps a job whose node came back without it RUNNING: the user cancels it
    const cancelledAt = Date.now();
    if (/RUNNING|CONFIGURING|PENDING/.test(jobBack ?? '')) assert.equal(run('scancel', [jobId], { user: 'alice' }).code, 0);
    const state = (await until(`job ${jobId} ended`, () => {
      const s = jobFields(jobId).JobState ?? '';
      return /RUNNING|COMPLETING|CONFIGURING|PENDING/.test(s) ? undefined : s;
    }, 120_000, 200));
    await until(`job ${jobId}'s containers gone from ${victim} and ${other}`, () => [victim, other].every((n) => containersOfJob(n, jobId).length === 0), 60_000, 200);
    const endedMs = Date.now() - cancelledAt;
    const recVictim = await until(`job ${jobId}'s record on ${victim}`, () => jobRecordsOn(victim, { jobId, since })[0], 30_000, 200);
    t.diagnostic(`after scancel the job ended ${state} and its containers were gone from both nodes in ${secs(endedMs)}; ${victim}'s record: State ${String(recVictim.State)}, SettledLate ${String(recVictim.SettledLate)}`);
    assertDrillInvariants([{ jobId, nodes: [other, victim], since, state }]);
    assert.ok(!readIfExists(path.join(dir, 'out.txt')).includes('berth exec: internal'), 'no internal error reached the user');

    const next = normalJob(victim, 'drill-reboot-after');
    assert.match(next.out, /berth demo image 1\.0/);
    assertDrillInvariants([{ jobId: next.jobId, nodes: [victim], since, state: 'COMPLETED' }]);
  });
});
