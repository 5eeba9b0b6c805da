// --container-save: the site's repositories for a user, the check at submit, which node's epilog
// asks for the save, and what berthd does with the job's container (a fake engine).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { accountingRecords } from '../../services/agent/accounting/accounting-record';
import { ContainerSaver, type SaveEngine } from '../../services/agent/images/container-save';
import type { JobRecord } from '../../services/agent/jobs/job-record';
import { silentLogger } from '../../services/agent/logger';
import { runSubmitCheck } from '../../services/shared/submit-check';
import { saveOnNode } from '../../services/cli/hook';
import type { RegistryAuth } from '../../services/shared/images/credentials';
import { builtinSiteRules } from '../../services/shared/site-rules';
import { judgeSaveTarget } from '../../services/shared/site-rules-check';

const rules = builtinSiteRules({ containerSave: { repositories: ['reg.site:5000/{user}/*', 'reg.site:5000/shared/team-*'] } });
const login: RegistryAuth = { username: 'alice', password: 'pw', registry: 'reg.site:5000', source: '/home/alice/.docker/config.json' };

describe('--container-save: where a user may push', () => {
  it('takes a repository of the site patterns, {user} being the user, with the tag (latest when none)', () => {
    assert.equal(judgeSaveTarget('reg.site:5000/alice/env:v2', 'alice', rules), 'reg.site:5000/alice/env:v2');
    assert.equal(judgeSaveTarget('reg.site:5000/alice/env', 'alice', rules), 'reg.site:5000/alice/env:latest');
    assert.equal(judgeSaveTarget('reg.site:5000#shared/team-a:1', 'bob', rules), 'reg.site:5000/shared/team-a:1', "enroot's form too");
  });

  it("refuses another user's repository, a path * does not cover, a digest, no registry, and any save where the site lists none", () => {
    assert.throws(() => judgeSaveTarget('reg.site:5000/bob/env:1', 'alice', rules), /reg\.site:5000\/bob\/env is not a repository this site lets you push to \(berth's built-in site rules, containerSave\.repositories: reg\.site:5000\/alice\/\*, reg\.site:5000\/shared\/team-\*\)/);
    assert.throws(() => judgeSaveTarget('reg.site:5000/alice/a/b:1', 'alice', rules), /not a repository this site lets you push to/);
    assert.throws(() => judgeSaveTarget(`reg.site:5000/alice/env@sha256:${'a'.repeat(64)}`, 'alice', rules), /name a tag instead/);
    assert.throws(() => judgeSaveTarget('alice/env:1', 'alice', rules), /name the registry to push to/);
    assert.throws(() => judgeSaveTarget('reg.site:5000/alice/env:1', 'alice', builtinSiteRules()), /this site does not let jobs save their containers/);
  });
});

describe('--container-save at submit', () => {
  const client = { resolveDigest: async () => 'sha256:' + 'b'.repeat(64), checkAccess: async () => undefined };
  const check = async (env: Record<string, string>, logins = async (r: string) => (r === 'reg.site:5000' ? login : undefined)) => {
    let out = '';
    let err = '';
    const code = await runSubmitCheck({ BERTH_CONTAINER_IMAGE: 'reg.site:5000/team/app:1', BERTH_SUBMIT_FOR: 'job', ...env }, (s) => (out += s), (s) => (err += s),
      { who: { uid: 4242, gids: [4242] }, userName: 'alice', siteRules: rules, resolve: { client }, logins });
    return { code, out, err };
  };

  it('passes the checked target to the job', async () => {
    const r = await check({ BERTH_CONTAINER_SAVE: 'reg.site:5000/alice/env' });
    assert.equal(r.err, '');
    assert.match(r.out, /^BERTH_CONTAINER_SAVE=reg\.site:5000\/alice\/env:latest$/m);
  });

  it('refuses a target the site does not allow, one without a login of the user, one for a step, and one without an image', async () => {
    assert.match((await check({ BERTH_CONTAINER_SAVE: 'reg.site:5000/bob/env' })).err, /is not a repository this site lets you push to/);
    const nologin = await check({ BERTH_CONTAINER_SAVE: 'reg.site:5000/alice/env' }, async () => undefined);
    assert.equal(nologin.code, 1);
    assert.match(nologin.err, /you have no login for reg\.site:5000; run docker login reg\.site:5000 first/);
    assert.match((await check({ BERTH_CONTAINER_SAVE: 'reg.site:5000/alice/env', BERTH_SUBMIT_FOR: 'step' })).err, /give the option to the sbatch, salloc or srun that makes the job/);
    assert.match((await check({ BERTH_CONTAINER_IMAGE: '', BERTH_CONTAINER_SAVE: 'reg.site:5000/alice/env' })).err, /--container-save.*need --container-image/);
  });
});

describe('--container-save at the epilog', () => {
  it("is asked for by the job's first node only", () => {
    const env = { SPANK_BERTH_CONTAINER_SAVE: 'reg.site:5000/alice/env:1', SLURM_JOB_NODELIST: 'n[2-3]' };
    assert.equal(saveOnNode(env, 'n2'), 'reg.site:5000/alice/env:1');
    assert.equal(saveOnNode(env, 'n3'), '');
    assert.equal(saveOnNode({ SLURM_JOB_NODELIST: 'n2' }, 'n2'), '');
  });
});

class FakeEngine implements SaveEngine {
  calls: string[] = [];
  committed?: { id: string; repository: string; tag: string; config: Record<string, unknown> };
  pushError?: Error;
  async inspect(): Promise<{ labels: Record<string, string> }> {
    return { labels: { 'io.berth.job.id': '7', 'io.berth.seal': 'abc', 'org.example': 'from-container' } };
  }
  async imageConfig(): Promise<Record<string, unknown>> {
    return { User: '', Env: ['PATH=/bin'], Cmd: ['sh'], Labels: { 'org.example': 'x' } };
  }
  async commitContainer(id: string, repository: string, tag: string, config: Record<string, unknown>): Promise<string> {
    this.calls.push(`commit ${id} ${repository}:${tag}`);
    this.committed = { id, repository, tag, config };
    return 'sha256:new';
  }
  async pushImage(ref: string, auth: RegistryAuth): Promise<void> {
    this.calls.push(`push ${ref} as ${auth.username}`);
    if (this.pushError) throw this.pushError;
  }
  async imageRepoDigests(): Promise<string[]> {
    return [`reg.site:5000/alice/env@sha256:${'c'.repeat(64)}`];
  }
  async removeImage(id: string): Promise<void> {
    this.calls.push(`rmi ${id}`);
  }
}

describe("berthd saving a job's container", () => {
  const req = { jobId: '7', uid: 4242, user: 'alice', containerId: 'c1', imageDigest: `reg.site:5000/team/app@sha256:${'b'.repeat(64)}`, target: 'reg.site:5000/alice/env:1' };
  const saver = (engine: FakeEngine, own: RegistryAuth | undefined) => new ContainerSaver({
    engine, ownLogin: () => async () => own, homeOf: async () => '/home/alice', siteRules: () => rules, push: { timeoutMs: 1000, inactivityMs: 1000 }, log: silentLogger(),
  });

  it("commits with the image's own config (none of the container's labels or environment), pushes with the user's login, and removes the local image", async () => {
    const engine = new FakeEngine();
    const r = await saver(engine, login).save(req);
    assert.deepEqual(r, { saved: true, image: `reg.site:5000/alice/env@sha256:${'c'.repeat(64)}`, message: `berth: --container-save: saved the container as reg.site:5000/alice/env@sha256:${'c'.repeat(64)}` });
    assert.deepEqual(engine.calls, ['commit c1 reg.site:5000/alice/env:1', 'push reg.site:5000/alice/env:1 as alice', 'rmi sha256:new']);
    assert.deepEqual(engine.committed!.config, {
      User: '', Env: ['PATH=/bin'], Cmd: ['sh'],
      // the container's own labels named empty (dockerd would copy them), the image's kept
      Labels: { 'io.berth.job.id': '', 'io.berth.seal': '', 'org.example': 'x', 'org.opencontainers.image.base.name': req.imageDigest },
    });
  });

  it('says why, and leaves nothing on the node, when the user has no login, the site refuses the target or the push fails', async () => {
    const none = new FakeEngine();
    const nologin = await saver(none, undefined).save(req);
    assert.equal(nologin.saved, false);
    assert.match(nologin.message, /^berth: --container-save=reg\.site:5000\/alice\/env:1: the container was not saved: you have no login for reg\.site:5000/);
    assert.deepEqual(none.calls, [], 'nothing committed');
    const other = new FakeEngine();
    const refused = await saver(other, login).save({ ...req, target: 'reg.site:5000/bob/env:1' });
    assert.match(refused.message, /not saved: reg\.site:5000\/bob\/env is not a repository this site lets you push to/);
    assert.deepEqual(other.calls, []);
    const failing = new FakeEngine();
    failing.pushError = new Error('denied: requested access to the resource is denied');
    const pushed = await saver(failing, login).save(req);
    assert.match(pushed.message, /not saved: the push to reg\.site:5000 as alice was refused or failed: denied: requested access/);
    assert.deepEqual(failing.calls.at(-1), 'rmi sha256:new', 'the committed image is removed after a failed push too');
  });
});

describe("the job's accounting record", () => {
  const job = { jobId: '7', node: 'n1', startTime: '2026-05-01T10:00:00.000Z', steps: [], userContainers: [], containerId: 'c1', containerName: '', state: 'ENDED', endTime: '', error: '', uid: 1, gid: 1, user: 'a', imageRef: '', imageDigest: '', workDir: '' } as JobRecord;
  it('has ContainerSave only for a job that asked for a save, on the node that saved it', () => {
    const save = { Target: 'reg.site:5000/a/env:1', Image: '', Error: 'berth: --container-save=reg.site:5000/a/env:1: the container was not saved: no login' };
    const [withSave] = accountingRecords(job, '2026-05-01T11:00:00.000Z', undefined, { save });
    assert.deepEqual(withSave!.ContainerSave, save);
    const [without] = accountingRecords(job, '2026-05-01T11:00:00.000Z', undefined);
    assert.ok(!('ContainerSave' in without!));
  });
});
