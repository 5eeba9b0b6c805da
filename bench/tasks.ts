// Per-task cost of a container step (issue #5): inside one 2-node allocation with 8 tasks per
// node, `srun true` (no container) against `srun berth exec -- true` (a client per task) and
// `srun --container-image=IMAGE true` (native launch: tasks join the job's container from the
// SPANK plugin), interleaved, medians of N; then each task's berth exec client measured by
// /usr/bin/time: peak RSS and CPU time (the native launch adds no process per task).
//   npm run bench:tasks [-- --runs 8]
import { readFileSync, writeFileSync, chownSync } from 'node:fs';
import path from 'node:path';
import { sandbox } from '../test/support/stack';
import { jobDir, jobIdFrom, jobState, run, waitFor } from '../test/support/slurm';
import { median } from './support/figures';

const runs = Number(process.argv[process.argv.indexOf('--runs') + 1]) || 8;
const dir = jobDir('alice', 'bench-tasks');
const out = path.join(dir, 'bench.out');
const script = path.join(dir, 'bench.sh');
writeFileSync(script, `#!/bin/sh
ms() { echo $(( $(date +%s%N) / 1000000 )); }
srun -O --ntasks-per-node=8 berth exec -- true  # warm the image user files and the page cache
i=0
while [ $i -lt ${runs} ]; do
  t0=$(ms); srun -O --ntasks-per-node=8 true; t1=$(ms); srun -O --ntasks-per-node=8 berth exec -- true; t2=$(ms)
  srun -O --ntasks-per-node=8 --container-image=${sandbox().demoImage} true; t3=$(ms)
  srun --ntasks-per-node=1 true; t4=$(ms); srun --ntasks-per-node=1 --container-image=${sandbox().demoImage} true; t5=$(ms)
  echo "plain $((t1 - t0))"; echo "berth $((t2 - t1))"; echo "native $((t3 - t2))"; echo "plain1 $((t4 - t3))"; echo "native1 $((t5 - t4))"
  i=$((i + 1))
done
srun -O --ntasks-per-node=8 /usr/bin/time -f 'task %M %U %S %e' berth exec -- true 2>&1
`, { mode: 0o755 });
chownSync(script, 2001, 2001);
const sub = run('sbatch', ['-N2', '-n16', '-O', '--no-container-batch', `--container-image=${sandbox().demoImage}`, '-o', out, script], { user: 'alice', cwd: dir });
if (sub.code !== 0) throw new Error(`sbatch failed: ${sub.stderr}`);
const jobId = jobIdFrom(sub.stdout);
waitFor(`job ${jobId}`, () => jobState(jobId) === '' || undefined, 600_000);
const text = readFileSync(out, 'utf8');
const col = (name: string) => text.split('\n').filter((l) => l.startsWith(`${name} `)).map((l) => l.split(' ').slice(1).map(Number));
const plain = median(col('plain').map((r) => r[0]!));
const berth = median(col('berth').map((r) => r[0]!));
const native = median(col('native').map((r) => r[0]!));
const plain1 = median(col('plain1').map((r) => r[0]!));
const native1 = median(col('native1').map((r) => r[0]!));
const tasks = col('task');
if (tasks.length !== 16 || !plain || !berth || !native) throw new Error(`unexpected output:\n${text}`);
const rss = median(tasks.map((t) => t[0]! / 1024));
const cpu = median(tasks.map((t) => (t[1]! + t[2]!) * 1000));
console.log(`srun -N2 --ntasks-per-node=8 berth exec -- true ÷ srun true, medians of ${runs}: ${berth} / ${plain} ms = ${(berth / plain).toFixed(2)}`);
console.log(`srun -N2 --ntasks-per-node=8 --container-image=IMAGE true (native launch) ÷ srun true: ${native} / ${plain} ms = ${(native / plain).toFixed(2)}`);
console.log(`per step, native launch minus plain srun: ${native1 - plain1} ms with 1 task per node, ${native - plain} ms with 8 (the cost does not grow with the tasks)`);
console.log(`berth exec client per task (16 tasks): peak RSS median ${rss.toFixed(1)} MB (max ${(Math.max(...tasks.map((t) => t[0]!)) / 1024).toFixed(1)}), CPU time median ${cpu.toFixed(0)} ms (user+sys)`);
console.log(`for 128 tasks on one node that is about ${(rss * 128 / 1024).toFixed(1)} GB of client RSS and ${(cpu * 128 / 1000).toFixed(1)} CPU-seconds per step`);
