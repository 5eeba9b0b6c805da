// The hot path (issue 15), every row of its table in one run, berth and the plain Docker CLI
// (or plain Slurm) side by side, interleaved, medians of N (no assertions, figures only):
//   1. srun -N2 --ntasks-per-node=8 --container-image=IMAGE true in a container job ÷ srun true
//   2. a step container (srun --container-image in a plain allocation) − srun true ÷ docker run -d,
//      and its submit check alone: berth-hook submit-check (berthd's SubmitCheck) ÷ berth submit-check
//   3. the prolog hook with a cached image ÷ docker run -d of the same container: the hook slurmd
//      runs (scripts/slurm/prolog: berth-hook), and `berth hook prolog` (Node.js) beside it
//   4. the epilog of a job with 8 containers ÷ 8 parallel docker rm -f
//   5. berth exec -- true ÷ docker exec true: the installed berth (berth-exec), and the Node
//      client (`node berth.js exec`) beside it
//   6. the submit check of an srun in a job naming the job's image (in srun's plugin) vs the
//      berth submit-check process it replaced
//   7. an idle berthd (the sandbox's on n3: no jobs, no scrapes): CPU per hour and RSS
//   npm run bench:hot-path [-- --runs 10 --idle-seconds 60]
import { spawn, spawnSync } from 'node:child_process';
import { chownSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { node, sandbox, uidOf } from '../test/support/stack';
import { jobDir, jobIdFrom, jobState, run, waitFor } from '../test/support/slurm';
import { median, sh } from './support/figures';
import { cpuSecondsOf, rssOf } from './support/own-berthd';

const arg = (name: string, dflt: number): number => Number(process.argv[process.argv.indexOf(`--${name}`) + 1]) || dflt;
const runs = Math.max(10, arg('runs', 10));
const idleSeconds = arg('idle-seconds', 60);
const NODE = 'n1';
const image = sandbox().demoImage;
const uid = uidOf('alice');
const docker = ['docker', '-H', `unix://${node(NODE).dockerSocket}`];
const berth = '/usr/local/bin/berth';
/** what scripts/slurm/prolog and epilog run: the native hook, which hands what is unusual to `berth hook` */
const hookBin = '/usr/local/lib/berth/berth-hook';
const hook = (kind: 'prolog' | 'epilog'): string[] => [hookBin, `--berth=${berth}`, kind];
const pinned = spawnSync(berth, ['resolve', image], { encoding: 'utf8' }).stdout.trim();
const containerArgs = ['--network', 'host', '--user', `${uid}:${uid}`, '--cap-drop', 'ALL', '--security-opt', 'no-new-privileges',
  '-v', '/usr/local/lib/berth/berth-init:/.berth/init:ro', '-v', '/home/alice:/home/alice', '--entrypoint', '/.berth/init', image, 'pause'];



/** all of argvs at once; ms until the last has ended */
async function parallel(argvs: string[][]): Promise<number> {
  const t0 = performance.now();
  await Promise.all(argvs.map((argv) => new Promise<void>((resolve, reject) => {
    const c = spawn(argv[0]!, argv.slice(1), { stdio: 'ignore' });
    c.once('error', reject);
    c.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`${argv.join(' ')} exited ${code}`))));
  })));
  return performance.now() - t0;
}

function hookEnv(jobId: string): Record<string, string> {
  return { PATH: '/usr/bin:/bin', SLURM_JOB_ID: jobId, SLURMD_NODENAME: NODE, SLURM_JOB_UID: String(uid), SLURM_JOB_GID: String(uid),
    SLURM_JOB_USER: 'alice', SLURM_JOB_WORK_DIR: '/home/alice', SPANK_BERTH_CONTAINER_IMAGE: pinned, SPANK_BERTH_CONTAINER_IMAGE_REQUESTED: image };
}

/** Runs a batch script as alice and returns its output lines `NAME MS` as columns. */
function batch(name: string, sbatchArgs: string[], body: string): Map<string, number[]> {
  const dir = jobDir('alice', name);
  const out = path.join(dir, 'bench.out');
  const script = path.join(dir, 'bench.sh');
  writeFileSync(script, `#!/bin/sh\nms() { echo $(( $(date +%s%N) / 1000000 )); }\n${body}\n`, { mode: 0o755 });
  chownSync(script, uid, uid);
  const sub = run('sbatch', [...sbatchArgs, '-o', out, script], { user: 'alice', cwd: dir });
  if (sub.code !== 0) throw new Error(`sbatch failed: ${sub.stderr}`);
  const jobId = jobIdFrom(sub.stdout);
  waitFor(`job ${jobId}`, () => jobState(jobId) === '' || undefined, 900_000);
  const cols = new Map<string, number[]>();
  for (const line of readFileSync(out, 'utf8').split('\n')) {
    const m = /^([a-z0-9-]+) (\d+(?:\.\d+)?)$/.exec(line.trim());
    if (m) cols.set(m[1]!, [...(cols.get(m[1]!) ?? []), Number(m[2])]);
  }
  return cols;
}

function col(cols: Map<string, number[]>, name: string): number {
  const xs = cols.get(name) ?? [];
  if (xs.length === 0) throw new Error(`the benchmark job printed no '${name}' figures: ${JSON.stringify([...cols])}`);
  return median(xs);
}

type Row = { what: string; berth: number; base: number; goal: string; ratio?: number; unit?: string; note?: string };
const rows: Row[] = [];

// 1 and 6: inside one 2-node container job
{
  const cols = batch('bench-hot-steps', ['-N2', '-n16', '-O', '-w', 'n1,n2', '--no-container-batch', `--container-image=${image}`], `
srun -O --ntasks-per-node=8 --container-image=${image} true   # warm
i=0
while [ $i -lt ${runs} ]; do
  t0=$(ms); srun -O --ntasks-per-node=8 true; t1=$(ms); srun -O --ntasks-per-node=8 --container-image=${image} true; t2=$(ms)
  echo "plain $((t1 - t0))"; echo "container $((t2 - t1))"
  n=$(strace -f -e trace=execve srun -N1 -n1 --container-image=${image} true 2>&1 | grep -c 'execve(".*/berth"')
  echo "plugin-processes $n"
  t3=$(ms); BERTH_CONTAINER_IMAGE=$SLURM_SPANK_BERTH_CONTAINER_IMAGE berth submit-check >/dev/null; t4=$(ms)
  echo "submit-check $((t4 - t3))"
  i=$((i + 1))
done`);
  rows.push({ what: 'srun -N2 x8 --container-image true ÷ srun true', berth: col(cols, 'container'), base: col(cols, 'plain'), goal: '≤ 1.15' });
  const procs = Math.max(...(cols.get('plugin-processes') ?? [NaN]));
  // no time of its own to show: the figure is how many berth processes srun started (strace)
  rows.push({ what: 'submit check, srun naming the job\'s image', berth: NaN, base: col(cols, 'submit-check'), goal: '≤ 30 ms', ratio: NaN,
    note: `srun started ${procs} berth process(es)${procs === 0 ? ': the plugin takes the job\'s pin' : ''}; baseline: the berth submit-check it replaced` });
}

// 2: step containers in a plain 1-node allocation, against docker run -d on the node
{
  const cols = batch('bench-hot-stepc', ['-N1', '-w', NODE], `
srun --container-image=${pinned} true   # warm
i=0
while [ $i -lt ${runs} ]; do
  t0=$(ms); srun true; t1=$(ms); srun --container-image=${pinned} true; t2=$(ms)
  echo "plain $((t1 - t0))"; echo "step $((t2 - t1))"
  # the step's submit check alone, as the plugin runs it in srun: berthd's answer, then the command's
  export BERTH_CONTAINER_IMAGE=${pinned} BERTH_SUBMIT_FOR=step
  t3=$(ms); ${hookBin} --berth=${berth} submit-check >/dev/null; t4=$(ms); ${berth} submit-check >/dev/null; t5=$(ms)
  unset BERTH_CONTAINER_IMAGE BERTH_SUBMIT_FOR
  echo "hook-check $((t4 - t3))"; echo "node-check $((t5 - t4))"
  i=$((i + 1))
done`);
  const runsMs: number[] = [];
  for (let i = 0; i < runs; i++) {
    const name = `berth-bench-hot-run-${i}`;
    runsMs.push(sh([...docker, 'run', '-d', '--name', name, ...containerArgs]));
    sh([...docker, 'rm', '-f', name]);
  }
  const added = col(cols, 'step') - col(cols, 'plain');
  rows.push({ what: 'step container − srun true ÷ docker run -d', berth: added, base: median(runsMs), goal: '≤ 1.3' });
  rows.push({ what: '  its submit check: berth-hook submit-check ÷ berth submit-check', berth: col(cols, 'hook-check'), base: col(cols, 'node-check'), goal: '(no Node.js start)' });
}

// 3, 4, 5: the hooks and berth exec on n1, interleaved with the Docker CLI
{
  sh([berth, 'hook', 'prolog'], hookEnv('799999'));
  sh([berth, 'hook', 'epilog'], hookEnv('799999'));
  const prolog: number[] = [];
  const prologNode: number[] = [];
  const dockerRun: number[] = [];
  const epilog: number[] = [];
  const rmf: number[] = [];
  for (let i = 0; i < runs; i++) {
    const id = String(820000 + i);
    // the Node hook's prolog of a job of its own, interleaved: the figure before berth-hook's
    const nodeId = String(830000 + i);
    prologNode.push(sh([berth, 'hook', 'prolog'], hookEnv(nodeId)));
    sh(hook('epilog'), hookEnv(nodeId));
    prolog.push(sh(hook('prolog'), hookEnv(id)));
    // seven more containers of the job, as its user's own docker run would leave them
    await parallel(Array.from({ length: 7 }, (_, k) => [...docker, 'run', '-d', '--name', `berth-bench-hot-${id}-${k}`,
      '--label', `io.berth.job.id=${id}`, '--label', 'io.berth.role=user', ...containerArgs]));
    epilog.push(sh(hook('epilog'), hookEnv(id)));
    const names = Array.from({ length: 8 }, (_, k) => `berth-bench-hot-plain-${i}-${k}`);
    const t0 = performance.now();
    await parallel(names.map((n) => [...docker, 'run', '-d', '--name', n, ...containerArgs]));
    dockerRun.push((performance.now() - t0) / 8);
    rmf.push(await parallel(names.map((n) => [...docker, 'rm', '-f', n])));
  }
  // docker run -d one at a time for the prolog's baseline
  const single: number[] = [];
  for (let i = 0; i < runs; i++) {
    const name = `berth-bench-hot-one-${i}`;
    single.push(sh([...docker, 'run', '-d', '--name', name, ...containerArgs]));
    sh([...docker, 'rm', '-f', name]);
  }
  rows.push({ what: 'prolog hook, cached image ÷ docker run -d', berth: median(prolog), base: median(single), goal: '≤ 1.1' });
  rows.push({ what: '  the same by `berth hook prolog` (Node.js)', berth: median(prologNode), base: median(single), goal: '(for comparison)' });
  rows.push({ what: 'epilog, 8 containers ÷ 8 parallel docker rm -f', berth: median(epilog), base: median(rmf), goal: '≤ 1.0' });

  const id = '829999';
  sh([berth, 'hook', 'prolog'], hookEnv(id));
  const envArgs = [`PATH=/usr/local/bin:/usr/bin:/bin`, `SLURM_JOB_ID=${id}`, `SLURMD_NODENAME=${NODE}`];
  const exec: number[] = [];
  const nodeExec: number[] = [];
  const dexec: number[] = [];
  for (let i = 0; i < runs; i++) {
    // the installed berth: the native client (berth-exec) where it is installed
    exec.push(sh(['runuser', '-u', 'alice', '--', 'env', ...envArgs, berth, 'exec', '--', 'true']));
    // the Node client it hands the unusual to, interleaved: the figure before berth-exec
    nodeExec.push(sh(['runuser', '-u', 'alice', '--', 'env', ...envArgs, 'node', '/usr/local/lib/berth/berth.js', 'exec', '--', 'true']));
    dexec.push(sh([...docker, 'exec', '-u', `${uid}:${uid}`, `berth-${NODE}-job-${id}`, 'true']));
  }
  sh([berth, 'hook', 'epilog'], hookEnv(id));
  rows.push({ what: 'berth exec -- true ÷ docker exec true', berth: median(exec), base: median(dexec), goal: '≤ 1.5' });
  rows.push({ what: '  the same by `node berth.js exec` (Node.js)', berth: median(nodeExec), base: median(dexec), goal: '(for comparison)' });
}

// 7: the sandbox's berthd on n3, which the rows above leave alone: no jobs, nobody scraping
let idle = '';
{
  const pid = Number(readFileSync(`/run/berth-sandbox/n3/berthd.pid`, 'utf8').trim());
  const busy = run('squeue', ['-h', '-w', 'n3', '-o', '%A']).stdout.trim();
  const cpu0 = cpuSecondsOf(pid);
  const t0 = performance.now();
  await new Promise((r) => setTimeout(r, idleSeconds * 1000));
  const window = (performance.now() - t0) / 1000;
  const cpuPerHour = (cpuSecondsOf(pid) - cpu0) / window * 3600;
  const rss = rssOf(pid);
  idle = `idle berthd on n3 (${busy ? `NOT idle: jobs ${busy.split('\n').join(',')}` : 'no jobs'}, not scraped, ${window.toFixed(0)} s): ${cpuPerHour.toFixed(2)} CPU s/hour (goal ≤ 1), ` +
    `RSS ${(rss.rss / 2 ** 20).toFixed(1)} MiB (goal ≤ 80 MB = 76.3 MiB)`;
}

console.log(`berth hot path on the sandbox (${NODE}, n2): medians of ${runs} interleaved runs`);
console.log('measure'.padEnd(50), 'berth ms'.padStart(9), 'baseline ms'.padStart(12), 'ratio'.padStart(7), '  goal');
for (const r of rows) {
  const ratio = r.ratio ?? r.berth / r.base;
  console.log(r.what.padEnd(50), (Number.isNaN(r.berth) ? '—' : r.berth.toFixed(1)).padStart(9), r.base.toFixed(1).padStart(12), (Number.isNaN(ratio) ? '—' : ratio.toFixed(2)).padStart(7), ' ', r.goal, r.note ? `(${r.note})` : '');
}
console.log(idle);
