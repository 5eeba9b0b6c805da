// Where sbatch's batch script runs, through the real Slurm: in the job's container with
// --container-image (on the command line or as #SBATCH), as pyxis runs it; on the host with
// --no-container-batch (or BERTH_CONTAINER_BATCH=0), where srun is and the steps that name the
// image join the container. A plain srun step never runs in a container unless it names one.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { pushBusyboxImage } from '../support/images';
import { jobDir, jobIdFrom, run, writeScript } from '../support/slurm';

const PATH = '/usr/local/bin:/usr/bin:/bin';
const TAG = '127.0.0.1:5000/berth/batch-where:1';
/** prints where it runs: the image's marker file, or that it is missing, and whether srun is there */
const PROBE = 'if [ -f /etc/batch-where ]; then echo "in-container $(cat /etc/batch-where)"; else echo on-host; fi; command -v srun >/dev/null && echo srun-found || echo no-srun';

describe('where the batch script runs', { timeout: 300_000 }, () => {
  pushBusyboxImage(TAG, { 'etc/batch-where': 'image-marker\n' });

  const submit = (name: string, args: string[], env: Record<string, string> = {}): { code: number; text: string; stderr: string; jobId: string } => {
    const dir = jobDir('alice', name);
    const out = path.join(dir, 'out.txt');
    // #SBATCH lines go right below the shebang writeScript puts in
    const script = writeScript(dir, 'job.sh', [...args.filter((a) => a.startsWith('#SBATCH')), PROBE].join('\n'), 'alice');
    const sub = run('sbatch', ['-N1', '-w', 'n2', '--wait', '-o', out, ...args.filter((a) => !a.startsWith('#SBATCH')), script], { user: 'alice', cwd: dir, env: { PATH, ...env }, timeoutMs: 180_000 });
    let text = '';
    try { text = readFileSync(out, 'utf8'); } catch { /* no output: the assertion on code says why */ }
    return { code: sub.code, text, stderr: sub.stderr, jobId: sub.code === 0 ? jobIdFrom(sub.stdout) : '' };
  };

  it('sbatch --container-image: the script runs in the job container, as with pyxis (where srun is not, unless the image has it)', () => {
    const r = submit('batch-default', [`--container-image=${TAG}`]);
    assert.equal(r.code, 0, `${r.stderr}\n${r.text}`);
    assert.match(r.text, /^in-container image-marker$/m);
    assert.match(r.text, /^no-srun$/m, "the busybox image has no srun: the script sees the image's files, not the host's");
  });

  it('#SBATCH --container-image in the script does the same', () => {
    const r = submit('batch-directive', [`#SBATCH --container-image=${TAG}`]);
    assert.equal(r.code, 0, `${r.stderr}\n${r.text}`);
    assert.match(r.text, /^in-container image-marker$/m);
  });

  it('--container-batch, the option existing scripts give, is the same again', () => {
    const r = submit('batch-explicit', [`--container-image=${TAG}`, '--container-batch']);
    assert.equal(r.code, 0, `${r.stderr}\n${r.text}`);
    assert.match(r.text, /^in-container image-marker$/m);
  });

  it('--no-container-batch (#SBATCH too, or BERTH_CONTAINER_BATCH=0) runs the script on the host, where srun is', () => {
    for (const [name, args, env] of [
      ['batch-host', [`--container-image=${TAG}`, '--no-container-batch'], {}],
      ['batch-host-directive', [`#SBATCH --container-image=${TAG}`, '#SBATCH --no-container-batch'], {}],
      ['batch-host-env', [`--container-image=${TAG}`], { BERTH_CONTAINER_BATCH: '0' }],
    ] as const) {
      const r = submit(name, [...args], { ...env });
      assert.equal(r.code, 0, `${name}: ${r.stderr}\n${r.text}`);
      assert.match(r.text, /^on-host$/m, name);
      assert.match(r.text, /^srun-found$/m, name);
    }
  });

  it('a plain srun in a host batch script runs on the host; one naming the image joins the container', () => {
    const dir = jobDir('alice', 'batch-steps');
    const out = path.join(dir, 'out.txt');
    const probe = 'if [ -f /etc/batch-where ]; then echo in-container; else echo on-host; fi';
    const script = writeScript(dir, 'job.sh', `srun sh -c '${probe}' | sed s/^/plain:/\nsrun --container-image=${TAG} sh -c '${probe}' | sed s/^/named:/`, 'alice');
    const sub = run('sbatch', ['-N1', '-w', 'n2', '--wait', `--container-image=${TAG}`, '--no-container-batch', '-o', out, script], { user: 'alice', cwd: dir, env: { PATH }, timeoutMs: 180_000 });
    const text = readFileSync(out, 'utf8');
    assert.equal(sub.code, 0, `${sub.stderr}\n${text}`);
    assert.match(text, /^plain:on-host$/m);
    assert.match(text, /^named:in-container$/m);
  });

  it('--container-batch and --no-container-batch together are refused at submit', () => {
    const dir = jobDir('alice', 'batch-both');
    const r = run('sbatch', ['-N1', `--container-image=${TAG}`, '--container-batch', '--no-container-batch', '--wrap', 'true'], { user: 'alice', cwd: dir, env: { PATH } });
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /--container-batch and --no-container-batch are given together; choose one/);
  });
});
