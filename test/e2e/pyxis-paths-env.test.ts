// pyxis's meaning of relative paths, tmpfs options and PYXIS_CONTAINER_* variables inside a job,
// through the real Slurm: a --container-mounts source that starts with '.' is taken from the
// directory srun or sbatch runs in, a relative --container-workdir from the container's /,
// tmpfs:DST:FLAGS takes size=, nr_inodes= and mode= (size within the job's memory), and an srun
// inside an allocation honours the variables set for it, but not those the job was made with
// (which every srun of the job inherits).
import assert from 'node:assert/strict';
import { chownSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { uidOf } from '../support/stack';
import { pushBusyboxImage } from '../support/images';
import { jobDir, readIfExists, run } from '../support/slurm';

const PATH = '/usr/local/bin:/usr/bin:/bin';
const TAG = '127.0.0.1:5000/berth/pyxis-paths:1';
const OTHER = '127.0.0.1:5000/berth/pyxis-paths:2';
/** prints which image the command ran in, or "host" */
const WHERE = 'cat /etc/marker 2>/dev/null || echo host';

describe("pyxis's relative paths, tmpfs options and its variables inside a job", { timeout: 300_000 }, () => {
  pushBusyboxImage(TAG, { 'etc/marker': 'one\n' });
  pushBusyboxImage(OTHER, { 'etc/marker': 'two\n' });
  const dir = jobDir('alice', 'pyxis-paths');
  const mine = (file: string, text: string) => {
    writeFileSync(path.join(dir, file), text);
    chownSync(path.join(dir, file), uidOf('alice'), uidOf('alice'));
  };
  mine('input.txt', 'from the submit dir\n');
  const as = (cmd: string, args: string[], env: Record<string, string> = {}) => run(cmd, args, { user: 'alice', cwd: dir, env: { PATH, ...env }, timeoutMs: 180_000 });

  it("takes ./ mount sources from srun's directory and a relative workdir from the container's / (mounts.bats, workdir.bats)", () => {
    const r = as('srun', ['-N1', '-w', 'n2', '--container-mounts=./:/test-mnt,./input.txt:/script.txt:ro', '--container-workdir=../', `--container-image=${TAG}`,
      'sh', '-c', 'cat /script.txt; cat /test-mnt/input.txt; pwd']);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(r.stdout.trim().split('\n'), ['from the submit dir', 'from the submit dir', '/']);
    const w = as('srun', ['-N1', '-w', 'n2', '--container-workdir=etc', `--container-image=${TAG}`, 'pwd']);
    assert.equal(w.stdout.trim(), '/etc', w.stderr);
    // the check at submit names the path it made of ./
    const missing = as('srun', ['-N1', '-w', 'n2', '--container-mounts=./nothing-here:/m', `--container-image=${TAG}`, 'true']);
    assert.notEqual(missing.code, 0);
    assert.match(missing.stderr, new RegExp(`the source path does not exist: ${dir}/nothing-here`));
    assert.match(missing.stderr, /^srun: error: berth: --container-mounts=/m, 'refused at submit, before any job');
  });

  it("gives a tmpfs the options pyxis hands to the mount that dockerd takes (size=, nr_inodes=, mode=), within the job's memory, and refuses huge= at submit", () => {
    const r = as('srun', ['-N1', '-w', 'n2', '--mem=300M', '--container-mounts=tmpfs:/mytmpfs:size=64m+mode=0700+nr_inodes=1k', `--container-image=${TAG}`,
      'sh', '-c', 'grep " /mytmpfs " /proc/mounts; echo x > /mytmpfs/f && echo written']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^tmpfs \/mytmpfs tmpfs rw,nosuid,nodev,.*size=65536k,nr_inodes=1024,mode=700/m);
    assert.match(r.stdout, /^written$/m, "the tmpfs is the user's");
    // pyxis's mounts.bats "tmpfs huge pages": refused before any job, so no node is asked
    const huge = as('srun', ['-N1', '-w', 'n2', '--container-mounts=tmpfs:/mytmpfs:huge=within_size', `--container-image=${TAG}`, 'true']);
    assert.notEqual(huge.code, 0);
    assert.match(huge.stderr, /^srun: error: berth: --container-mounts entry 'tmpfs:\/mytmpfs:huge=within_size': 'huge=within_size': dockerd makes berth's tmpfs mounts and takes no huge=/m);
    const big = as('srun', ['-N1', '-w', 'n2', '--mem=300M', '--container-mounts=tmpfs:/t:size=1g', `--container-image=${TAG}`, 'true']);
    assert.notEqual(big.code, 0);
    assert.match(big.stderr, /--container-mounts=tmpfs:\/t:size=1g: size=1g is more than the job's memory on this node, 314572800 bytes/);
    const bad = as('srun', ['-N1', '-w', 'n2', '--container-mounts=tmpfs:/t:uid=0', `--container-image=${TAG}`, 'true']);
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /^srun: error: berth: --container-mounts entry 'tmpfs:\/t:uid=0': 'uid=0': a tmpfs of a job is always its user's/m);
  });

  it("takes ./ from sbatch's directory for the job's container", () => {
    const out = path.join(dir, 'sbatch.out');
    const sub = as('sbatch', ['-N1', '-w', 'n2', '--wait', '-o', out, '--container-mounts=./:/in', `--container-image=${TAG}`, '--wrap', 'cat /in/input.txt']);
    assert.equal(sub.code, 0, `${sub.stderr}\n${readIfExists(out)}`);
    assert.match(readIfExists(out), /from the submit dir/);
  });

  it('honours PYXIS_CONTAINER_* and BERTH_CONTAINER_* set for an srun inside an allocation (env_vars.bats)', () => {
    const script = [
      `PYXIS_CONTAINER_IMAGE=${TAG} srun -N1 sh -c '${WHERE}'`,
      `PYXIS_CONTAINER_IMAGE=${TAG} PYXIS_CONTAINER_MOUNTS=./input.txt:/in.txt PYXIS_CONTAINER_WORKDIR=/etc srun -N1 sh -c 'cat /in.txt; pwd'`,
      `PYXIS_CONTAINER_IMAGE=${TAG} PYXIS_CONTAINER_READONLY=1 srun -N1 touch /newfile || echo refused`,
      `BERTH_CONTAINER_IMAGE=${OTHER} PYXIS_CONTAINER_IMAGE=${TAG} srun -N1 sh -c '${WHERE}'`,
      `PYXIS_CONTAINER_IMAGE=${TAG} srun -N1 --container-image=${OTHER} sh -c '${WHERE}'`,
      `srun -N1 sh -c '${WHERE}'`,
    ].join('\n');
    const r = as('salloc', ['-Q', '-N1', '-w', 'n2', 'sh', '-c', script]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(r.stdout.trim().split('\n'), ['one', 'from the submit dir', '/etc', 'refused', 'two', 'two', 'host'], r.stderr);
    assert.match(r.stderr, /Read-only file system/, 'PYXIS_CONTAINER_READONLY=1 for that srun');
  });

  it('does not make every step a container step for the variables the job was made with', () => {
    // exported for salloc: the allocation's shell and each of its sruns inherit them
    const a = as('salloc', ['-Q', '-N1', '-w', 'n2', 'sh', '-c', `srun -N1 sh -c '${WHERE}'; PYXIS_CONTAINER_IMAGE=${OTHER} srun -N1 sh -c '${WHERE}'`], { PYXIS_CONTAINER_IMAGE: TAG });
    assert.equal(a.code, 0, a.stderr);
    assert.deepEqual(a.stdout.trim().split('\n'), ['host', 'two'], 'the inherited image is the job\'s; one set for the srun is its own');
    // exported for sbatch, whose script runs on the host: its sruns too
    const out = path.join(dir, 'inherit.out');
    const b = as('sbatch', ['-N1', '-w', 'n2', '--wait', '-o', out, '--no-container-batch', '--wrap', `srun -N1 sh -c '${WHERE}'; BERTH_CONTAINER_IMAGE=${OTHER} srun -N1 sh -c '${WHERE}'`], { BERTH_CONTAINER_IMAGE: TAG });
    assert.equal(b.code, 0, `${b.stderr}\n${readIfExists(out)}`);
    assert.deepEqual(readIfExists(out).trim().split('\n').filter((l) => !l.startsWith('berth:')), ['host', 'two'], readIfExists(out));
  });
});
