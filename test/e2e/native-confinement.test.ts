// How confined the tasks of a native container step are, measured through real Slurm against a
// berth exec task of the same job: the same /proc status (Seccomp 2, no_new_privs, empty
// capability sets), a seccomp filter that answers every syscall as the berth exec task's and
// the container's own, and no user namespace where the same user on the host may make one.
// The batch script of --container-batch likewise. And when the container's filter cannot be
// copied, the step's tasks do not start and say why, while the job and the node go on.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { compareFilters, confineProbe, confinementOf, dumpFilters, PRINT_CONFINEMENT } from '../support/confine-probe';
import { node, sandbox } from '../support/stack';
import { containersOfJob, jobDir, jobIdFrom, jobNodes, jobState, readIfExists, run, waitFor, writeScript } from '../support/slurm';

const PATH = '/usr/local/bin:/usr/bin:/bin';

/** a task script (POSIX sh: the container's busybox and the host's dash run it) printing how it
 * is confined and whether it may make a user namespace; with `wait` it waits for DIR/go */
function probeScript(dir: string): string {
  return writeScript(dir, 'probe.sh', [
    'echo $$ > "$DIR/$1.pid"',
    PRINT_CONFINEMENT,
    'busybox unshare -Ur true 2>&1; echo "userns=$?"',
    '[ "$2" = wait ] || exit 0',
    'i=0; while [ ! -f "$DIR/go" ] && [ $i -lt 300 ]; do sleep 0.2; i=$((i+1)); done',
  ].join('\n').replaceAll('$DIR', dir), 'alice');
}

/** the host PID of the job container's first process (berth-init pause) on nodeName */
function containerPid(nodeName: string, jobId: string): number {
  const [id] = containersOfJob(nodeName, jobId, 'running');
  assert.ok(id, `job ${jobId} has a running container on ${nodeName}`);
  const r = run('docker', ['-H', `unix://${node(nodeName).dockerSocket}`, 'inspect', '-f', '{{.State.Pid}}', id]);
  assert.equal(r.code, 0, r.stderr);
  return Number(r.stdout.trim());
}

describe('confinement of native container steps', { timeout: 300_000 }, () => {
  const demo = sandbox().demoImage;

  it('confines a native task as a berth exec task of the same job: status, seccomp answers, no user namespace', (t) => {
    const dir = jobDir('alice', 'confinement');
    const probe = probeScript(dir);
    const script = [
      `srun --overlap --container-image=${demo} sh ${probe} native wait > ${dir}/native.txt 2>&1 &`,
      `srun --overlap berth exec -- sh ${probe} exec wait > ${dir}/exec.txt 2>&1 &`,
      'wait',
      `srun sh ${probe} host > ${dir}/host.txt 2>&1`,
      'echo "job-done"',
    ].join('\n');
    const out = path.join(dir, 'out.txt');
    const sub = run('sbatch', ['-N1', '--no-container-batch', `--container-image=${demo}`, '-o', out, '--wrap', script], { user: 'alice', cwd: dir, env: { PATH } });
    assert.equal(sub.code, 0, sub.stderr);
    const jobId = jobIdFrom(sub.stdout);
    const pids = waitFor('both tasks to be running', () => {
      const n = Number(readIfExists(path.join(dir, 'native.pid')).trim());
      const e = Number(readIfExists(path.join(dir, 'exec.pid')).trim());
      return n > 0 && e > 0 ? { native: n, exec: e } : undefined;
    }, 120_000);
    let measured;
    try {
      // while both tasks wait: their filter stacks, answer for answer
      const init = containerPid(jobNodes(jobId), jobId);
      measured = {
        nativeVsExec: compareFilters(pids.native, pids.exec),
        nativeVsContainer: compareFilters(pids.native, init),
        nativeVsNone: compareFilters(pids.native, 'none'),
        counts: [dumpFilters(pids.native).count, dumpFilters(pids.exec).count],
      };
    } finally {
      writeFileSync(path.join(dir, 'go'), '');
    }
    const { nativeVsExec, nativeVsContainer, nativeVsNone, counts } = measured;
    waitFor(`job ${jobId} to end`, () => jobState(jobId) === '' || undefined, 120_000);
    const text = readIfExists(out);
    assert.match(text, /^job-done$/m, text);

    assert.ok(nativeVsExec.inputs > 100_000);
    assert.equal(nativeVsExec.differ, 0, `native vs berth exec task: ${nativeVsExec.text}`);
    assert.equal(nativeVsContainer.differ, 0, `native task vs the container's first process: ${nativeVsContainer.text}`);
    assert.ok(nativeVsNone.differ > 1000, 'the native task is filtered at all');
    assert.equal(counts[0], counts[1], 'as many filters');

    const native = readIfExists(path.join(dir, 'native.txt'));
    const exec = readIfExists(path.join(dir, 'exec.txt'));
    const host = readIfExists(path.join(dir, 'host.txt'));
    const want = confinementOf(exec);
    assert.equal(want.Seccomp, '2', exec);
    assert.equal(want.NoNewPrivs, '1');
    assert.equal(want.CapBnd, '0000000000000000');
    assert.deepEqual(confinementOf(native), want, `native:\n${native}\nberth exec:\n${exec}`);
    assert.equal(confinementOf(native).Seccomp_filters ?? 'not shown', want.Seccomp_filters ?? 'not shown');

    // a user namespace: refused alike in both, where the same user on the host may make one
    const refusal = (s: string) => s.split('\n').filter((l) => /unshare/.test(l)).join('\n');
    assert.match(native, /^userns=1$/m, native);
    assert.match(exec, /^userns=1$/m, exec);
    assert.match(refusal(native), /Operation not permitted/);
    assert.equal(refusal(native), refusal(exec));
    if (/^userns=0$/m.test(host)) assert.notEqual(confinementOf(host).Seccomp, '2', 'a plain srun task is not under the container\'s filter');
    else t.diagnostic(`a plain srun task may not make a user namespace on this host either, so that comparison is skipped: ${host}`);
  });

  it('confines the batch script of --container-batch likewise', () => {
    const dir = jobDir('alice', 'confinement-batch');
    const probe = probeScript(dir);
    const out = path.join(dir, 'out.txt');
    const sub = run('sbatch', ['-N1', '--wait', `--container-image=${demo}`, '--container-batch', '-o', out, '--wrap', `sh ${probe} batch`],
      { user: 'alice', cwd: dir, env: { PATH }, timeoutMs: 180_000 });
    const text = readIfExists(out);
    assert.equal(sub.code, 0, `${sub.stderr}\n${text}`);
    const got = confinementOf(text);
    assert.equal(got.Seccomp, '2', text);
    assert.equal(got.NoNewPrivs, '1');
    assert.equal(got.CapBnd, '0000000000000000');
    assert.equal(got.CapEff, '0000000000000000');
    assert.match(text, /^userns=1$/m);
  });

  it('confines every task of concurrent native steps joining one container (their copies wait for each other)', () => {
    const dir = jobDir('alice', 'confinement-concurrent');
    const out = path.join(dir, 'out.txt');
    const script = [
      `for i in 1 2 3 4 5 6 7 8; do srun --overlap --container-image=${demo} sh -c 'grep -E "^(Seccomp|CapBnd):" /proc/self/status' > ${dir}/step.$i 2>&1 & done`,
      'wait',
      `cat ${dir}/step.*`,
    ].join('\n');
    const sub = run('sbatch', ['-N1', '--wait', '--no-container-batch', `--container-image=${demo}`, '-o', out, '--wrap', script], { user: 'alice', cwd: dir, env: { PATH }, timeoutMs: 180_000 });
    const text = readIfExists(out);
    assert.equal(sub.code, 0, `${sub.stderr}\n${text}`);
    assert.equal(text.match(/^Seccomp:\s+2$/gm)?.length, 8, text);
    assert.equal(text.match(/^CapBnd:\s+0{16}$/gm)?.length, 8, text);
  });

  it('does not start the tasks when the container\'s filter cannot be copied, and says why; the job and the node go on', async () => {
    const dir = jobDir('alice', 'confinement-refused');
    const out = path.join(dir, 'out.txt');
    const script = [
      `i=0; while [ ! -f ${dir}/go ] && [ $i -lt 600 ]; do sleep 0.2; i=$((i+1)); done`,
      `srun --container-image=${demo} sh -c 'echo native-ran'; echo "native-exit=$?"`,
      `srun berth exec -- sh -c 'echo exec-ran'; echo "exec-exit=$?"`,
    ].join('\n');
    const sub = run('sbatch', ['-N1', '--no-container-batch', `--container-image=${demo}`, '-o', out, '--wrap', script], { user: 'alice', cwd: dir, env: { PATH } });
    assert.equal(sub.code, 0, sub.stderr);
    const jobId = jobIdFrom(sub.stdout);
    const nodeName = waitFor(`job ${jobId} to run`, () => (jobState(jobId) === 'RUNNING' ? jobNodes(jobId) : undefined), 120_000);
    const init = waitFor('the job container', () => (containersOfJob(nodeName, jobId, 'running').length ? containerPid(nodeName, jobId) : undefined));
    // another tracer holds the container's first process (as a debugger would), so the
    // plugin's copy cannot attach
    const holder = spawn(confineProbe(), ['hold', String(init), '120'], { stdio: ['ignore', 'pipe', 'pipe'] });
    try {
      await new Promise<void>((resolve, reject) => {
        holder.stdout.on('data', (b: Buffer) => b.toString().includes('held') && resolve());
        holder.once('exit', (code) => reject(new Error(`the holder ended (${code}) before attaching`)));
      });
      writeFileSync(path.join(dir, 'go'), '');
      waitFor('the native step to end', () => /native-exit=/.test(readIfExists(out)) || undefined, 60_000);
    } finally {
      holder.kill();
    }
    waitFor(`job ${jobId} to end`, () => jobState(jobId) === '' || undefined, 60_000);
    const text = readIfExists(out);
    assert.match(text, new RegExp(`berth: the tasks of step ${jobId}\\.0 do not start: the container's confinement cannot be copied onto them: pid ${init} is traced by pid ${holder.pid}, so its seccomp filter cannot be read`), text);
    assert.doesNotMatch(text, /^native-ran$/m);
    assert.match(text, /^native-exit=[1-9]\d*$/m);
    assert.match(text, /^exec-ran$/m);
    assert.match(text, /^exec-exit=0$/m);
    const state = run('sinfo', ['-h', '-n', nodeName, '-o', '%T']).stdout.trim();
    assert.doesNotMatch(state, /drain|down|fail/i, `node ${nodeName} is ${state}`);
  });
});
