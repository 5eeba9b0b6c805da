// The scenario through the real 3-node Slurm: a 2-node job with --container-image
// runs `srun berth exec` on both nodes, as the job's user, in the image, on each node.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { sandbox, uidOf } from '../support/stack';
import { accountingRecords, containersOfJob, jobDir, jobIdFrom, run, waitFor, writeScript } from '../support/slurm';

describe('a 2-node container job through Slurm', { timeout: 240_000 }, () => {
  it("runs each step in the image on both nodes as the job's user and leaves nothing behind", () => {
    const image = sandbox().demoImage;
    const began = new Date().toISOString();
    const dir = jobDir('alice', 'two-node');
    const script = writeScript(dir, 'job.sh', [
      `srun berth exec -- sh -c 'echo "node=$SLURMD_NODENAME uid=$(id -u) user=$(whoami) rank=$SLURM_PROCID release=$(cat /etc/berth-demo-release)"'`,
      `srun berth exec -- sh -c 'test -f /etc/berth-demo-release && echo "second step on $SLURMD_NODENAME"'`,
    ].join('\n'), 'alice');
    const sub = run('sbatch', ['-N2', '--wait', '--no-container-batch', `--container-image=${image}`, '-o', path.join(dir, 'out.txt'), script], { user: 'alice', cwd: dir, timeoutMs: 180_000 });
    const out = readFileSync(path.join(dir, 'out.txt'), 'utf8');
    assert.equal(sub.code, 0, `sbatch failed: ${sub.stderr}\n${out}`);
    const jobId = jobIdFrom(sub.stdout);
    const uid = uidOf('alice');
    const lines = out.split('\n').filter((l) => l.startsWith('node='));
    assert.equal(lines.length, 2, out);
    const nodes = lines.map((l) => l.match(/node=(\S+)/)![1]!).sort();
    assert.equal(new Set(nodes).size, 2, `one task on each of two nodes: ${out}`);
    for (const l of lines) assert.match(l, new RegExp(`uid=${uid} user=alice rank=[01] release=berth demo image 1\\.0`));
    assert.equal(out.split('\n').filter((l) => l.startsWith('second step on')).length, 2, out);

    // sbatch --wait returns before the epilogs have run: wait for them
    for (const n of sandbox().nodes) waitFor(`no container of job ${jobId} left on ${n.name}`, () => containersOfJob(n.name, jobId).length === 0 || undefined);
    for (const n of nodes) {
      const ours = (r: Record<string, unknown>) => r.JobID === jobId && String(r.Start) >= began;
      const rec = waitFor(`accounting record for job ${jobId} on ${n}`, () => accountingRecords(n).find((r) => ours(r) && r.RecordType === 'job'));
      assert.ok(rec, `accounting record for job ${jobId} on ${n}`);
      assert.equal(rec.UID, uid);
      assert.equal(rec.User, 'alice');
      assert.equal(rec.Image, image);
      assert.match(String(rec.ImageDigest), /^127\.0\.0\.1:5000\/berth\/demo@sha256:[a-f0-9]{64}$/);
      const steps = accountingRecords(n).filter((r) => ours(r) && r.RecordType === 'step');
      assert.deepEqual(steps.map((s) => s.StepID).sort(), ['0', '1']);
      assert.ok(steps.every((s) => s.ExitCode === '0:0' && s.State === 'COMPLETED'), JSON.stringify(steps));
    }
  });
});
