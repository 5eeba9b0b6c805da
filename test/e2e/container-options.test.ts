// The pyxis-named option family through the real Slurm: values checked at submit (a bad one
// fails sbatch/srun in the terminal, drains nothing), the environment-variable equivalents,
// and what a job made with them gets: mounts, working directory, variables, read-only root,
// home or no home.
import assert from 'node:assert/strict';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { sandbox, uidOf } from '../support/stack';
import { BerthdLog } from '../support/berthd';
import { jobDir, run } from '../support/slurm';

/** a file in alice's home outside any job directory: seen in a container only when home is mounted */
function homeMarker(): void {
  const f = '/home/alice/.berth-home-marker';
  writeFileSync(f, 'home\n');
  chownSync(f, uidOf('alice'), uidOf('alice'));
}

const PATH = '/usr/local/bin:/usr/bin:/bin';

describe('--container-* options through Slurm', { timeout: 300_000 }, () => {
  const image = sandbox().demoImage;
  homeMarker();

  it('fails sbatch and srun at once, with the reason, for a bad value, and drains nothing', () => {
    const dir = jobDir('alice', 'bad-options');
    // root's own directory, which alice may not read (and no site rule denies)
    const closed = mkdtempSync('/tmp/berth-e2e-closed-');
    const cases: [string[], Record<string, string>, RegExp][] = [
      [[`--container-image=${image}`, '--container-mounts=data:/in'], {}, /mount source 'data' is not an absolute path/],
      [[`--container-image=${image}`, '--container-mounts=/root:/in'], {}, /--container-mounts=\/root:\/in: the source \/root is under \/root, which this site does not let jobs mount \(site rules \/etc\/berth\/site\.json, userMounts\.deniedPrefixes\)/],
      [[`--container-image=${image}`, `--container-mounts=${closed}:/in`], {}, new RegExp(`--container-mounts=${closed}:/in: the source path ${closed} is not readable by uid \\d+ \\(mode 700`)],
      [[`--container-image=${image}`, '--container-mounts=/tmp:/proc/x'], {}, /under \/proc, which berth or the kernel provides/],
      [[`--container-image=${image}`, '--container-mounts=tmpfs:/t:huge=within_size'], {}, /'huge=within_size': dockerd makes berth's tmpfs mounts and takes no huge=/],
      [[`--container-image=${image}`, '--container-env=A=1'], {}, /'A=1' is not an environment variable name/],
      [[`--container-image=${image}`, '--container-name=../x'], {}, /--container-name '\.\.\/x' is not a valid name/],
      [[`--container-image=${image}`, '--container-readonly', '--container-writable'], {}, /--container-writable and --container-readonly are given together/],
      [['--container-mounts=/tmp:/in'], {}, /need --container-image \(or BERTH_CONTAINER_IMAGE\)/],
      [[`--container-image=${image}`], { BERTH_CONTAINER_MOUNTS: '/tmp:/in:rx' }, /unknown flag 'rx'/],
      [[], { BERTH_CONTAINER_IMAGE: image, BERTH_CONTAINER_READONLY: 'perhaps' }, /BERTH_CONTAINER_READONLY='perhaps' is not a yes\/no value/],
    ];
    for (const [args, env, re] of cases) {
      const s = run('sbatch', ['-N1', ...args, '-o', '/dev/null', '--wrap', 'true'], { user: 'alice', cwd: dir, env: { PATH, ...env } });
      assert.notEqual(s.code, 0, `sbatch ${args.join(' ')} ${JSON.stringify(env)} was accepted`);
      assert.doesNotMatch(s.stdout, /Submitted batch job/);
      assert.match(s.stderr, re, `sbatch ${args.join(' ')}`);
    }
    const srun = run('srun', ['-N1', `--container-image=${image}`, '--container-mounts=tmpfs:/t:uid=0', 'true'], { user: 'alice', cwd: dir, env: { PATH } });
    assert.notEqual(srun.code, 0);
    assert.match(srun.stderr, /'uid=0': a tmpfs of a job is always its user's/);
    assert.equal(run('sinfo', ['-h', '-t', 'drain', '-o', '%N']).stdout.trim(), '', 'no node drained');
    rmSync(closed, { recursive: true, force: true });
  });

  it("refuses a bad option at an srun in a job with berth submit-check's own words, answered by the node's berthd (berth-hook submit-check)", () => {
    const dir = jobDir('alice', 'in-job-refusal');
    // root's own directory, which alice may not read: the answer depends on whose check it is
    const closed = mkdtempSync('/tmp/berth-e2e-closed-');
    const cases: [string, string][] = [['tmpfs', '--container-mounts=tmpfs:/t:uid=0'], ['closed', `--container-mounts=${closed}:/in`], ['remap', '--container-remap-root']];
    const script = path.join(dir, 'steps.sh');
    writeFileSync(script, `#!/bin/sh\n${cases.map(([name, opt]) => `srun -N1 --container-image=${image} ${opt} true 2> ${dir}/${name}.err; echo $? > ${dir}/${name}.code`).join('\n')}\necho $SLURMD_NODENAME > ${dir}/node\n`, { mode: 0o755 });
    chownSync(script, uidOf('alice'), uidOf('alice'));
    const logs = Object.fromEntries(sandbox().nodes.map((n) => [n.name, new BerthdLog(n.name)]));
    const sub = run('sbatch', ['-N1', '--wait', '-o', path.join(dir, 'out.txt'), script], { user: 'alice', cwd: dir, env: { PATH }, timeoutMs: 120_000 });
    assert.equal(sub.code, 0, sub.stderr);
    const nodeName = readFileSync(path.join(dir, 'node'), 'utf8').trim();
    const refused = logs[nodeName]!.lines().filter((l) => l.message === 'submit check refused');
    for (const [name, opt] of cases) {
      assert.notEqual(readFileSync(path.join(dir, `${name}.code`), 'utf8').trim(), '0', `srun ${opt} ran`);
      // the words berth submit-check prints for the same values, as alice
      const cli = run('berth', ['submit-check'], { user: 'alice', cwd: dir, env: { PATH, BERTH_CONTAINER_IMAGE: image, BERTH_SUBMIT_FOR: 'step', SLURM_JOB_ID: '1',
        ...(name === 'tmpfs' ? { BERTH_CONTAINER_MOUNTS: 'tmpfs:/t:uid=0' } : name === 'closed' ? { BERTH_CONTAINER_MOUNTS: `${closed}:/in` } : { BERTH_CONTAINER_REMAP_ROOT: '1' }) } });
      assert.equal(cli.code, 1);
      const words = cli.stderr.trim();
      assert.match(words, /^berth: /);
      assert.ok(readFileSync(path.join(dir, `${name}.err`), 'utf8').includes(words), `srun ${opt} told the user: ${words}`);
      assert.ok(refused.some((l) => l.reason === words && l.by === `uid ${uidOf('alice')}`), `berthd on ${nodeName} answered the check of srun ${opt}`);
    }
    assert.equal(run('sinfo', ['-h', '-t', 'drain', '-o', '%N']).stdout.trim(), '', 'no node drained');
    rmSync(closed, { recursive: true, force: true });
  });

  it('gives the job its mounts, working directory, variables, read-only root and no home, as asked', () => {
    const dir = jobDir('alice', 'options');
    const data = path.join(dir, 'data');
    mkdirSync(data);
    writeFileSync(path.join(data, 'hello'), 'hello from the host\n');
    const uid = uidOf('alice');
    chownSync(data, uid, uid);
    chmodSync(data, 0o755);
    const out = path.join(dir, 'out.txt');
    const step = [
      'echo "pwd=$(pwd)"', 'echo "hello=$(cat /in/hello)"', 'echo "myvar=${MYVAR:-unset} other=${OTHER:-unset}"',
      'touch /in/w 2>/dev/null && echo in-writable || echo in-readonly',
      'echo "root=$(grep \" / \" /proc/mounts | cut -d\" \" -f4 | cut -d, -f1)"',
      'touch /tmp/w && echo tmp-writable',
      `test -f /home/alice/.berth-home-marker && echo home-mounted || echo no-home`,
    ].join('; ');
    const s = run('sbatch', ['-N1', '--wait', '--no-container-batch', `--container-image=${image}`, `--container-mounts=${data}:/in:ro`, '--container-workdir=/in',
      '--container-env=MYVAR', '--container-readonly', '--no-container-mount-home', '--container-name=box', '-o', out,
      '--wrap', `srun berth exec -- sh -c '${step}'`],
    { user: 'alice', cwd: dir, env: { PATH, MYVAR: 'from-host', OTHER: 'not-forwarded' }, timeoutMs: 180_000 });
    const text = readFileSync(out, 'utf8');
    assert.equal(s.code, 0, `${s.stderr}\n${text}`);
    assert.match(text, /^pwd=\/in$/m);
    assert.match(text, /^hello=hello from the host$/m);
    assert.match(text, /^myvar=from-host other=unset$/m);
    assert.match(text, /^in-readonly$/m);
    assert.match(text, /^root=ro$/m);
    assert.match(text, /^tmp-writable$/m);
    assert.match(text, /^no-home$/m);
  });

  it('takes the options from BERTH_CONTAINER_* variables, with the command line winning', () => {
    const dir = jobDir('alice', 'options-env');
    const out = path.join(dir, 'out.txt');
    const s = run('sbatch', ['-N1', '--wait', '--container-workdir=/etc', '-o', out, '--wrap', `srun berth exec -- sh -c 'echo "pwd=$(pwd)"; test -f /home/alice/.berth-home-marker && echo home-mounted; echo root=$(grep \" / \" /proc/mounts | cut -d\" \" -f4 | cut -d, -f1)'`],
      { user: 'alice', cwd: dir, env: { PATH, BERTH_CONTAINER_IMAGE: image, BERTH_CONTAINER_WORKDIR: '/tmp', BERTH_CONTAINER_MOUNT_HOME: '1', BERTH_CONTAINER_BATCH: '0' }, timeoutMs: 180_000 });
    const text = readFileSync(out, 'utf8');
    assert.equal(s.code, 0, `${s.stderr}\n${text}`);
    assert.match(text, /^pwd=\/etc$/m, 'the command line wins over BERTH_CONTAINER_WORKDIR');
    assert.match(text, /^home-mounted$/m);
    assert.match(text, /^root=rw$/m, 'writable unless asked otherwise');
  });
});
