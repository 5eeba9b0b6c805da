// Step-container start (issue #5): inside a 1-node allocation without a job image,
// `srun --container-image=IMAGE true` (a step container made at step start, removed at its
// end, image cached) against `srun true`, interleaved, medians of N; the difference is what a
// step container adds to a step, set against `docker run -d IMAGE` on the same node's dockerd.
//   npm run bench:step-container [-- --runs 8]
import { execFileSync } from 'node:child_process';
import { chownSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { node } from '../test/support/stack';
import { pushBusyboxImage } from '../test/support/images';
import { jobDir, jobIdFrom, jobState, run, waitFor } from '../test/support/slurm';
import { median } from './support/figures';

const runs = Number(process.argv[process.argv.indexOf('--runs') + 1]) || 8;
const IMAGE = '127.0.0.1:5000/berth/tools:1';
pushBusyboxImage(IMAGE, { 'etc/berth-tools-release': 'berth tools image 1\n' });
const pinned = run('berth', ['resolve', IMAGE]).stdout.trim();


const dir = jobDir('alice', 'bench-step-container');
const out = path.join(dir, 'bench.out');
const script = path.join(dir, 'bench.sh');
writeFileSync(script, `#!/bin/sh
ms() { echo $(( $(date +%s%N) / 1000000 )); }
srun --container-image=${pinned} true   # pull onto the node, warm the page cache
i=0
while [ $i -lt ${runs} ]; do
  t0=$(ms); srun true; t1=$(ms); srun --container-image=${pinned} true; t2=$(ms)
  echo "plain $((t1 - t0))"; echo "step $((t2 - t1))"
  i=$((i + 1))
done
`, { mode: 0o755 });
chownSync(script, 2001, 2001);
const sub = run('sbatch', ['-N1', '-w', 'n1', '-o', out, script], { user: 'alice', cwd: dir });
if (sub.code !== 0) throw new Error(`sbatch failed: ${sub.stderr}`);
const jobId = jobIdFrom(sub.stdout);
waitFor(`job ${jobId}`, () => jobState(jobId) === '' || undefined, 600_000);
const text = readFileSync(out, 'utf8');
const col = (name: string) => text.split('\n').filter((l) => l.startsWith(`${name} `)).map((l) => Number(l.split(' ')[1]));
const plain = median(col('plain'));
const step = median(col('step'));
if (!plain || !step) throw new Error(`unexpected output:\n${text}`);

const docker = (...args: string[]) => execFileSync('docker', ['-H', `unix://${node('n1').dockerSocket}`, ...args], { encoding: 'utf8' }).trim();
const dockerRuns: number[] = [];
for (let i = 0; i < runs; i++) {
  const t0 = process.hrtime.bigint();
  const id = docker('run', '-d', '--network', 'host', pinned, '/bin/sleep', '60');
  dockerRuns.push(Number(process.hrtime.bigint() - t0) / 1e6);
  docker('rm', '-f', id);
}
const dockerRun = median(dockerRuns);
console.log(`srun --container-image=IMAGE true ÷ srun true (1 node, step container made and removed, medians of ${runs}): ${step} / ${plain} ms = ${(step / plain).toFixed(2)}`);
console.log(`step container start (the difference, ${(step - plain).toFixed(0)} ms) ÷ docker run -d (${dockerRun.toFixed(0)} ms) = ${((step - plain) / dockerRun).toFixed(2)}`);
