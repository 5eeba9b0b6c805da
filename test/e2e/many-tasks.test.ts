// MPI-style steps: `srun -N2 --ntasks-per-node=4 berth exec -- CMD` runs 8 tasks in the
// job's two containers, each with its own SLURM_PROCID/SLURM_LOCALID, the PMI-2 variables
// srun --mpi=pmi2 gives it, the node's host name (host network) and its exit status.
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { sandbox } from '../support/stack';
import { jobDir, jobIdFrom, jobState, run, waitFor } from '../support/slurm';

describe('many tasks per node across nodes', { timeout: 180_000 }, () => {
  it('runs 2×4 tasks in the containers with distinct ranks and PMI variables', () => {
    const dir = jobDir('alice', 'many-tasks');
    const out = path.join(dir, 'out.txt');
    const task = 'echo "rank=$SLURM_PROCID local=$SLURM_LOCALID node=$SLURMD_NODENAME ntasks=$SLURM_NTASKS pmi=$PMI_RANK/$PMI_SIZE host=$(hostname) in=$(head -c 5 /etc/berth-demo-release)"';
    const script = `srun --mpi=pmi2 -O --ntasks-per-node=4 berth exec -- sh -c '${task}'; echo "srun-exit=$?"; srun -O --ntasks-per-node=4 berth exec -- sh -c 'exit $((SLURM_PROCID == 5 ? 7 : 0))'; echo "failing-exit=$?"`;
    const sub = run('sbatch', ['-N2', '-n8', '-O', '--no-container-batch', `--container-image=${sandbox().demoImage}`, '-o', out, '--wrap', script], { user: 'alice', cwd: dir });
    assert.equal(sub.code, 0, sub.stderr);
    const jobId = jobIdFrom(sub.stdout);
    waitFor(`job ${jobId} to end`, () => jobState(jobId) === '' || undefined, 120_000);
    assert.ok(existsSync(out), 'job output exists');
    const text = readFileSync(out, 'utf8');
    const lines = text.split('\n').filter((l) => l.startsWith('rank='));
    assert.equal(lines.length, 8, text);
    const parsed = lines.map((l) => Object.fromEntries(l.split(' ').map((kv) => kv.split('=') as [string, string])));
    assert.deepEqual(parsed.map((p) => Number(p.rank)).sort((a, b) => a - b), [0, 1, 2, 3, 4, 5, 6, 7]);
    for (const p of parsed) {
      assert.equal(p.ntasks, '8');
      assert.equal(p.pmi, `${p.rank}/8`, 'PMI-2 rank and size reach the task');
      assert.equal(p.in, 'berth', 'runs in the image');
      assert.equal(p.host, os.hostname(), 'host network: the node\'s own host name');
    }
    const perNode = new Map<string, number[]>();
    for (const p of parsed) perNode.set(p.node!, [...(perNode.get(p.node!) ?? []), Number(p.local)]);
    assert.equal(perNode.size, 2, text);
    for (const locals of perNode.values()) assert.deepEqual(locals.sort(), [0, 1, 2, 3]);
    assert.match(text, /^srun-exit=0$/m);
    assert.match(text, /^failing-exit=7$/m, 'a task\'s exit status comes back through srun');
  });
});
