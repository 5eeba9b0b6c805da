// A diskless node (issue 16, docs/design/diskless.md): sandbox node n3's dockerd with its
// data-root on a tmpfs of fixed size (`scripts/sandbox up --diskless n3`) and its berthd with
// an image budget (imageGc.budgetBytes). Through Slurm: a job starts there; a second image
// that would take the cache past the budget evicts the first, unused one, and its job runs;
// an image bigger than the whole budget fails its job with the reason on srun's stderr and in
// the job's AdminComment, and the node stays in service. The sandbox is put back as it was
// (n3 on its small disk) afterwards. Figures for the design doc are printed as diagnostics.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync, statfsSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { BerthdLog, ensureBerthd } from '../support/berthd';
import { forgetImage, pushPaddedImage } from '../support/images';
import { drainedNodes } from '../support/invariants';
import { jobDir, resumeNodes, run } from '../support/slurm';
import { node, REPO } from '../support/stack';

const NODES = ['n1', 'n2', 'n3'];
const DISKLESS = 'n3';
const DISK = 'n1';
/** scripts/sandbox.d/docker.sh: DISKLESS_MIB, DISKLESS_BUDGET_BYTES */
const TMPFS_MIB = 768;
const BUDGET = 384_000_000;
const DATA_ROOT = `/var/lib/berth-sandbox/${DISKLESS}/docker`;
const REPO_A = '127.0.0.1:5000/berth/diskless-a';
const REPO_B = '127.0.0.1:5000/berth/diskless-b';
const REPO_BIG = '127.0.0.1:5000/berth/diskless-big';
const A = `${REPO_A}:200`;
const B = `${REPO_B}:200`;
const BIG = `${REPO_BIG}:400`;
const PATH = '/usr/local/bin:/usr/bin:/bin';
const MB = 1e6;

const docker = (n: string, ...args: string[]): string => execFileSync('docker', ['-H', `unix://${node(n).dockerSocket}`, ...args], { encoding: 'utf8' }).trim();

function imagesOn(n: string): { repo: string; bytes: number }[] {
  return docker(n, 'images', '--format', '{{.Repository}} {{.ID}}').split('\n').filter(Boolean).map((l) => {
    const [repo, id] = l.split(' ') as [string, string];
    return { repo, bytes: Number(docker(n, 'image', 'inspect', '--format', '{{.Size}}', id)) };
  });
}

function tmpfsUsed(): number {
  const st = statfsSync(DATA_ROOT);
  return (st.blocks - st.bfree) * st.bsize;
}

function shmemBytes(): number {
  return Number(/^Shmem:\s+(\d+) kB/m.exec(readFileSync('/proc/meminfo', 'utf8'))![1]) * 1024;
}

function srun(n: string, image: string, name: string): { code: number; stdout: string; stderr: string; ms: number; jobId?: string } {
  const began = Date.now();
  const r = run('srun', ['-N1', '-w', n, `--container-image=${image}`, 'sh', '-c', 'echo job=$SLURM_JOB_ID; cat /etc/padded-release'],
    { user: 'alice', cwd: jobDir('alice', name), env: { PATH }, timeoutMs: 240_000 });
  return { ...r, ms: Date.now() - began, jobId: /job=(\d+)/.exec(r.stdout)?.[1] ?? /job (\d+)/.exec(r.stderr)?.[1] };
}

function sandboxUp(args: string[]): void {
  const up = run(path.join(REPO, 'scripts/sandbox'), ['up', '--no-build', ...args], { timeoutMs: 300_000 });
  assert.equal(up.code, 0, `scripts/sandbox up ${args.join(' ')}: ${up.stdout}\n${up.stderr}`);
}

describe('a diskless node: dockerd on a tmpfs, berthd keeping an image budget', { timeout: 900_000 }, () => {
  const figures: string[] = [];
  before(async () => {
    sandboxUp(['--diskless', DISKLESS]);
    await ensureBerthd(NODES);
    resumeNodes();
    await Promise.all([pushPaddedImage(A, 200), pushPaddedImage(B, 200), pushPaddedImage(BIG, 400)]);
  });
  after(async () => {
    sandboxUp([]);
    await ensureBerthd(NODES);
    run('berth', ['resume', '--nodes', 'n[1-3]']);
    resumeNodes();
    forgetImage(node(DISK).dockerSocket, REPO_A);
    if (figures.length) console.log(`# figures for docs/design/diskless.md\n${figures.map((f) => `#   ${f}`).join('\n')}`);
  });

  it(`runs ${DISKLESS}'s engine on a ${TMPFS_MIB} MiB tmpfs with overlay2`, () => {
    const fs = execFileSync('findmnt', ['-rn', '-o', 'FSTYPE,SIZE', '--mountpoint', DATA_ROOT], { encoding: 'utf8' }).split('\n')[0];
    assert.equal(fs, `tmpfs ${TMPFS_MIB}M`);
    assert.equal(docker(DISKLESS, 'info', '--format', '{{.DockerRootDir}} {{.Driver}}'), `${DATA_ROOT} overlay2`);
  });

  it('starts a job there, and the same job on a node with a disk for comparison', () => {
    for (const repo of [REPO_A, REPO_B]) forgetImage(node(DISKLESS).dockerSocket, repo);
    const shm0 = shmemBytes();
    const used0 = tmpfsUsed();
    const onTmpfs = srun(DISKLESS, A, 'diskless-a');
    assert.equal(onTmpfs.code, 0, onTmpfs.stderr);
    assert.match(onTmpfs.stdout, /padded 200 MB/);
    const warm = srun(DISKLESS, A, 'diskless-a-warm');
    assert.equal(warm.code, 0, warm.stderr);
    forgetImage(node(DISK).dockerSocket, REPO_A);
    const onDisk = srun(DISK, A, 'disk-a');
    assert.equal(onDisk.code, 0, onDisk.stderr);
    const warmDisk = srun(DISK, A, 'disk-a-warm');
    const a = imagesOn(DISKLESS).find((i) => i.repo === REPO_A);
    figures.push(`image A ${(a!.bytes / MB).toFixed(0)} MB (one 200 MiB layer of random bytes over busybox): srun with a pull ${onTmpfs.ms} ms on the tmpfs node, ${onDisk.ms} ms on a disk node; cached ${warm.ms} ms vs ${warmDisk.ms} ms`);
    figures.push(`RAM: the tmpfs holds ${((tmpfsUsed() - used0) / MB).toFixed(0)} MB more after pulling A; the machine's Shmem grew ${((shmemBytes() - shm0) / MB).toFixed(0)} MB`);
  });

  it('keeps the budget: a second image that would exceed it evicts the first, unused one, and its job runs', () => {
    const log = new BerthdLog(DISKLESS);
    const r = srun(DISKLESS, B, 'diskless-b');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /padded 200 MB/);
    const left = imagesOn(DISKLESS);
    assert.ok(!left.some((i) => i.repo === REPO_A), `A was evicted: ${JSON.stringify(left)}`);
    assert.ok(left.some((i) => i.repo === REPO_B));
    const total = left.reduce((s, i) => s + i.bytes, 0);
    assert.ok(total <= BUDGET, `the images take ${total} bytes, within the budget of ${BUDGET}`);
    const made = log.find((l) => l.message === 'image budget: made room for a pull');
    assert.ok(made && JSON.stringify(made.removed).includes(REPO_A), `berthd's log says why A went: ${JSON.stringify(made)}`);
    figures.push(`second image: srun ${r.ms} ms, evicting ${JSON.stringify(made?.removed)}; images then ${(total / MB).toFixed(0)} MB of the ${BUDGET / MB} MB budget; tmpfs used ${(tmpfsUsed() / MB).toFixed(0)} MB of ${TMPFS_MIB} MiB`);
  });

  it('fails a job whose image alone is bigger than the budget, telling its user why, and leaves the node in service', () => {
    const log = new BerthdLog(DISKLESS);
    forgetImage(node(DISKLESS).dockerSocket, REPO_BIG);
    const r = srun(DISKLESS, BIG, 'diskless-big');
    assert.notEqual(r.code, 0, 'the job fails');
    assert.match(r.stderr, /does not fit on this node: its layers are 4\d\d MB, more than the 384 MB this node keeps for images/, `srun's stderr: ${r.stderr}`);
    const failed = log.find((l) => l.message === 'prologue failed');
    assert.equal(failed?.code, 'IMAGE_TOO_BIG', JSON.stringify(failed));
    assert.equal(failed?.fault, 'job');
    const jobId = String(failed?.job);
    const comment = /AdminComment=(.*)$/m.exec(run('scontrol', ['show', 'job', jobId]).stdout)?.[1] ?? '';
    assert.match(comment, /^berth: job \d+ failed on n3 before its first step: image .* does not fit on this node/, `AdminComment: ${comment}`);
    assert.deepEqual(drainedNodes(), [], 'no node drained');
    assert.equal(run('sinfo', ['-h', '-R', '-n', DISKLESS]).stdout.trim(), '');
    assert.ok(!imagesOn(DISKLESS).some((i) => i.repo === REPO_BIG), 'nothing of it was pulled');
    const next = srun(DISKLESS, B, 'diskless-after');
    assert.equal(next.code, 0, `a job with an image that fits runs there next: ${next.stderr}`);
    figures.push(`too big (${BIG}): srun failed in ${r.ms} ms: ${r.stderr.trim().split('\n').pop()}`);
  });
});
