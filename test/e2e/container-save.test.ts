// --container-save through the real Slurm, dockerd and the sandbox's private registry (whose
// site rules let each user push under their own name): a job writes a file into its container
// and saves it; the image is pushed with alice's own login and gone from the node; a new job on
// another node runs the saved image and finds the file. Targets the site does not allow, and a
// user without a login, are refused at submit.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { node, privateLogin, sandbox, uidOf, writeDockerLogin } from '../support/stack';
import { jobDir, run, waitFor } from '../support/slurm';
import { loginFile, stashLogins } from '../support/docker-logins';

const PATH = '/usr/local/bin:/usr/bin:/bin';

/** the registry's manifest of REPO:TAG, read with alice's login: its digest, or undefined */
async function manifestDigest(address: string, repo: string, tag: string): Promise<string | undefined> {
  const res = await fetch(`http://${address}/v2/${repo}/manifests/${tag}`, {
    method: 'HEAD',
    headers: {
      Authorization: `Basic ${Buffer.from(`alice:${privateLogin('alice')}`).toString('base64')}`,
      Accept: 'application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json',
    },
  });
  return res.ok ? res.headers.get('docker-content-digest') ?? undefined : undefined;
}

/** the ContainerSave field of JOB's job record, as alice reads her accounting */
function saveRecord(jobId: string): { Target: string; Image: string; Error: string } {
  return waitFor(`job ${jobId}'s accounting`, () => {
    const r = run('berth', ['accounting', '--nodes', 'n[1-3]', '--format', 'json', '--job', jobId, '--since', '1h'], { user: 'alice', env: { PATH } });
    const recs = r.code === 0 ? (JSON.parse(r.stdout) as { RecordType: string; ContainerSave?: { Target: string; Image: string; Error: string } }[]) : [];
    return recs.find((x) => x.RecordType === 'job' && x.ContainerSave)?.ContainerSave;
  }, 60_000);
}

describe('--container-save', { timeout: 300_000 }, () => {
  const registry = () => sandbox().privateRegistry.address;
  const tag = `t${Date.now()}`;
  const target = () => `${registry()}/alice/saved:${tag}`;
  let restoreLogins = (): void => {};

  before(() => {
    restoreLogins = stashLogins(['alice', 'bob']);
    writeDockerLogin(loginFile('alice'), 'alice', uidOf('alice'));
  });

  after(() => {
    restoreLogins();
  });

  it('saves a job\'s container at its end, with the user\'s login, and leaves no image of it on the node; a new job runs the saved image', async () => {
    const dir = jobDir('alice', 'save');
    const first = run('srun', ['-N1', '-w', 'n2', `--container-image=${sandbox().demoImage}`, `--container-save=${target()}`, 'sh', '-c', 'echo "from-job-one $SLURM_JOB_ID" > /tmp/saved-marker'],
      { user: 'alice', cwd: dir, env: { PATH }, timeoutMs: 120_000 });
    assert.equal(first.code, 0, first.stderr);
    const digest = await (async () => {
      for (let i = 0; i < 120; i++) {
        const d = await manifestDigest(registry(), 'alice/saved', tag);
        if (d) return d;
        await new Promise((r) => setTimeout(r, 500));
      }
      return undefined;
    })();
    assert.ok(digest?.startsWith('sha256:'), `${target()} was pushed`);
    const onN2 = run('docker', ['-H', `unix://${node('n2').dockerSocket}`, 'images', '-q', `${registry()}/alice/saved`]);
    assert.equal(onN2.stdout.trim(), '', 'the committed image does not stay on the node');

    const second = run('srun', ['-N1', '-w', 'n3', `--container-image=${target()}`, 'cat', '/tmp/saved-marker'], { user: 'alice', cwd: dir, env: { PATH }, timeoutMs: 120_000 });
    assert.equal(second.code, 0, second.stderr);
    assert.match(second.stdout, /^from-job-one \d+$/m);
    // the outcome is in the job's accounting, which alice reads herself
    const firstJob = /^from-job-one (\d+)$/m.exec(second.stdout)![1]!;
    assert.deepEqual(saveRecord(firstJob), { Target: target(), Image: `${registry()}/alice/saved@${digest}`, Error: '' });
    const labels = run('docker', ['-H', `unix://${node('n3').dockerSocket}`, 'image', 'inspect', '--format', '{{json .Config.Labels}}', `${registry()}/alice/saved@${digest}`]).stdout; // berth pulls by digest
    const berthLabels = Object.entries(JSON.parse(labels) as Record<string, string>).filter(([k]) => k.startsWith('io.berth.'));
    assert.ok(berthLabels.length > 0 && berthLabels.every(([, v]) => v === ''), `berth's labels, which dockerd adds to a commit, are empty in the saved image: ${labels}`);
    assert.match(labels, /org\.opencontainers\.image\.base\.name/);
  });

  it("says why in the job's accounting when the push cannot be made at the job's end, and the node stays in service", () => {
    const dir = jobDir('alice', 'save-late');
    // alice's login is gone by the job's end: she removes it in the job (her home is mounted)
    const r = run('srun', ['-N1', '-w', 'n2', `--container-image=${sandbox().demoImage}`, `--container-save=${registry()}/alice/late:1`, 'sh', '-c', 'rm "$HOME/.docker/config.json"; echo "job=$SLURM_JOB_ID"'],
      { user: 'alice', cwd: dir, env: { PATH }, timeoutMs: 120_000 });
    assert.equal(r.code, 0, `the job itself succeeds: ${r.stderr}`);
    const jobId = /^job=(\d+)$/m.exec(r.stdout)![1]!;
    // the epilog runs after srun returns: the login comes back only once the job is accounted
    let rec: { Target: string; Image: string; Error: string };
    try {
      rec = saveRecord(jobId);
    } finally {
      writeDockerLogin(loginFile('alice'), 'alice', uidOf('alice'));
    }
    assert.equal(rec.Image, '');
    assert.match(rec.Error, /the container was not saved: you have no login for 127\.0\.0\.1:5002 in ~\/\.docker\/config\.json; run docker login 127\.0\.0\.1:5002/);
    assert.doesNotMatch(run('sinfo', ['-h', '-n', 'n2', '-o', '%T']).stdout, /drain/);
    assert.equal(run('docker', ['-H', `unix://${node('n2').dockerSocket}`, 'images', '-q', `${registry()}/alice/late`]).stdout.trim(), '', 'nothing committed stays');
  });

  it("refuses at submit a repository the site does not let the user push to, and a user without a login", () => {
    const dir = jobDir('alice', 'save-refused');
    const other = run('srun', ['-N1', `--container-image=${sandbox().demoImage}`, `--container-save=${registry()}/bob/x:1`, 'true'], { user: 'alice', cwd: dir, env: { PATH } });
    assert.notEqual(other.code, 0);
    assert.match(other.stderr, new RegExp(`--container-save=${registry().replace(/\./g, '\\.')}/bob/x:1: ${registry().replace(/\./g, '\\.')}/bob/x is not a repository this site lets you push to`));
    const bobDir = jobDir('bob', 'save-nologin');
    const nologin = run('sbatch', ['-N1', `--container-image=${sandbox().demoImage}`, `--container-save=${registry()}/bob/x:1`, '--wrap', 'true'], { user: 'bob', cwd: bobDir, env: { PATH } });
    assert.notEqual(nologin.code, 0);
    assert.doesNotMatch(nologin.stdout, /Submitted batch job/);
    assert.match(nologin.stderr, /you have no login for 127\.0\.0\.1:5002; run docker login 127\.0\.0\.1:5002 first/);
  });
});
