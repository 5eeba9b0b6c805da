// pyxis's --container-mounts flags and tmpfs form, and its --container-name flags, as berthd
// applies them: the create body, the AuthZ site limits on users' own requests (Binds suffixes,
// Mounts' BindOptions and TmpfsOptions, HostConfig.Tmpfs), the runtime gate, and the step
// containers a NAME:FLAG or JOB.STEP finds.
import assert from 'node:assert/strict';
import path from 'node:path';
import { describe, it } from 'node:test';
import { parseMounts } from '../../services/shared/container-options';
import { buildJobContainerSpec } from '../../services/agent/containers/job-container-spec';
import { DEFAULT_SITE_LIMITS, siteLimitViolations } from '../../services/agent/policy/site-limits';
import { parseBody } from '../../services/agent/docker-request/body';
import { checkSpec } from '../../services/agent/runtime/oci-spec-check';
import { StepContainers } from '../../services/agent/steps/step-containers';
import { TaskFiles } from '../../services/agent/steps/task-files';
import { BerthError } from '../../services/shared/errors';
import { harness, prologueInput } from './fakes/helpers';

const OTHER = '127.0.0.1:5000/berth/tools:1';
const OTHER_DIGEST = 'sha256:' + 'b'.repeat(64);

describe('the create body of a container with pyxis-style mounts', () => {
  const body = (mounts: string, memoryBytes = 2 ** 30) => buildJobContainerSpec({
    identity: { jobId: '42', node: 'n1', uid: 2001, gid: 2001, user: 'alice', imageRef: 'i', imageDigest: 'i@sha256:' + 'a'.repeat(64), workDir: '' } as never,
    image: 'i@sha256:' + 'a'.repeat(64), supplementaryGids: [], cpus: 1, memoryBytes, devices: [], mounts: [], initBinary: '/init', memlockBytes: -1,
    userFiles: { passwd: '/p', group: '/g' }, userMounts: parseMounts(mounts),
  }).body.HostConfig as { Binds: string[]; Tmpfs?: Record<string, string> };

  it('binds with ro and the propagation as Docker options, and a tmpfs that is the job user\'s, nosuid, nodev and bounded by the job\'s memory', () => {
    const hc = body('/s:/a:ro+rprivate,/t:/b:rslave,tmpfs:/scratch');
    assert.ok(hc.Binds.includes('/s:/a:ro,rprivate'));
    assert.ok(hc.Binds.includes('/t:/b:rslave'));
    assert.ok(!hc.Binds.some((b) => b.startsWith('tmpfs')), 'a tmpfs is no bind');
    assert.deepEqual(hc.Tmpfs, { '/scratch': `rw,nosuid,nodev,exec,size=${2 ** 30},mode=0755,uid=2001,gid=2001` });
    assert.match(body('tmpfs:/x', 0).Tmpfs!['/x']!, /size=1073741824,/, 'with no memory figure, 1 GiB');
  });

  it('passes the site limits it is judged by (berth judges its own containers as a user\'s)', () => {
    const hc = body('/s:/a:ro+rslave,tmpfs:/scratch');
    const ctx = { user: 'alice', groups: [], job: { jobId: '42', uid: 2001, gid: 2001, cpus: 1, memoryBytes: 2 ** 30, devices: [], mountPrefixes: [] } };
    const v = siteLimitViolations(parseBody(JSON.stringify({ HostConfig: { ...hc, Binds: [] } })), ctx, DEFAULT_SITE_LIMITS, false);
    assert.deepEqual(v, []);
  });
});

describe("users' own docker requests: mount options that would reach past the container", () => {
  const ctx = { user: 'alice', groups: ['alice'], job: { jobId: '42', uid: 2001, gid: 2001, cpus: 2, memoryBytes: 2 ** 30, devices: [], mountPrefixes: [], groupIds: [2100] } };
  const judge = (hostConfig: Record<string, unknown>) =>
    siteLimitViolations(parseBody(JSON.stringify({ HostConfig: hostConfig })), ctx, DEFAULT_SITE_LIMITS, false).map((v) => v.reason).filter((r) => !/host path|may not enter|does not exist/.test(r));

  it('refuses shared and rshared propagation however it is written, and lets private and slave ones pass', () => {
    assert.match(judge({ Binds: ['/tmp:/x:rshared'] })[0]!, /rshared propagation: mounts made in the container would reach the host; use rslave/);
    assert.match(judge({ Binds: ['/tmp:/x:ro,SHARED'] })[0]!, /shared propagation/);
    assert.match(judge({ Mounts: [{ Type: 'bind', Source: '/tmp', Target: '/x', BindOptions: { Propagation: 'rshared' } }] })[0]!, /Mounts\[0\]\.BindOptions\.Propagation=rshared is not allowed/);
    assert.match(judge({ mounts: [{ type: 'bind', source: '/tmp', target: '/x', bindoptions: { propagation: 'shared' } }] })[0]!, /Propagation/, "dockerd's case-insensitive keys");
    assert.deepEqual(judge({ Binds: ['/tmp:/x:ro,rslave', '/tmp:/y:rprivate', '/tmp:/z'], Mounts: [{ Type: 'bind', Source: '/tmp', Target: '/w', BindOptions: { Propagation: 'slave' } }] }), []);
  });

  it('refuses tmpfs options for setuid programs or device files, another owner, a size past the job\'s memory, and unknown ones', () => {
    assert.deepEqual(judge({ Tmpfs: { '/t': 'rw,noexec,nosuid,size=64m,mode=1777,uid=2001,gid=2100' } }), []);
    assert.match(judge({ Tmpfs: { '/t': 'exec,suid' } })[0]!, /'suid' would allow setuid programs/);
    assert.match(judge({ Tmpfs: { '/t': 'dev' } })[0]!, /'dev' would allow device files/);
    assert.match(judge({ Tmpfs: { '/t': 'uid=0' } })[0]!, /'uid=0': the tmpfs would belong to uid 0, not to you \(uid=2001/);
    assert.match(judge({ Tmpfs: { '/t': 'gid=0' } })[0]!, /group 0, which is not one of yours \(2001, 2100\)/);
    assert.match(judge({ Tmpfs: { '/t': 'size=4g' } })[0]!, /from 1 to the job's memory on this node, 1073741824/);
    assert.match(judge({ Tmpfs: { '/t': 'size=50%' } })[0]!, /size/);
    assert.match(judge({ Tmpfs: { '/t': 'huge=always' } })[0]!, /'huge=always' is not an option berth lets a tmpfs have/);
    assert.match(judge({ Mounts: [{ Type: 'tmpfs', Target: '/t', TmpfsOptions: { SizeBytes: 2 ** 31 } }] })[0]!, /SizeBytes=2147483648 is not allowed: size 2147483648 is more than the job's memory/);
    assert.match(judge({ Mounts: [{ Type: 'tmpfs', Target: '/t', TmpfsOptions: { Options: [['exec'], ['uid', '0']] } }] })[0]!, /TmpfsOptions\.Options 'uid=0'/);
  });

  it('refuses shared propagation again in the OCI spec runc is given', () => {
    const spec = {
      process: { user: { uid: 2001, gid: 2001 }, noNewPrivileges: true, capabilities: {} },
      mounts: [{ destination: '/x', type: 'bind', source: '/tmp', options: ['rbind', 'rshared'] }],
      linux: { namespaces: [{ type: 'mount' }, { type: 'uts' }, { type: 'pid' }, { type: 'ipc' }], seccomp: {}, rootfsPropagation: 'shared' },
    };
    const v = checkSpec(spec, {
      owner: { jobId: '42', uid: 2001, gid: 2001, gids: [], role: 'user' }, containerId: 'f'.repeat(64), dataRoot: '/var/lib/docker', berthFiles: [],
      pinDir: '/run/pins', jobDevices: [], isHostNetns: () => false,
    } as never);
    assert.ok(v.problems.some((p) => /\/x would be rshared, carrying mounts made in the container onto the host/.test(p)), v.problems.join('; '));
    assert.ok(v.problems.some((p) => /root file system's propagation would be shared/.test(p)));
  });
});

describe("--container-name's flags and JOB.STEP in a job's steps", () => {
  function setup() {
    const h = harness();
    h.engine.digests.set(OTHER, OTHER_DIGEST);
    const files = new TaskFiles(path.join(h.dir, 'run', 'n1', 'tasks'));
    const steps = new StepContainers({ factory: h.factory, ledger: h.ledger, table: h.table, engine: h.engine, files, node: 'n1', log: h.log });
    const step = (over: Partial<Parameters<StepContainers['prologue']>[0]> = {}) => ({ jobId: '42', stepId: '0', uid: 2001, gid: 2001, user: 'alice', image: '', argv: ['true'], ...over });
    const named = (name: string, over: object = {}) => ({ mounts: [], workdir: '', envNames: [], name, ...over });
    return { h, steps, step, named };
  }
  const code = (c: string, re: RegExp) => (e: unknown) => e instanceof BerthError && e.code === c && re.test(e.message);

  it(':create makes the container and fails when one of that name exists; :exec joins one and fails when none does', async () => {
    const { h, steps, step, named } = setup();
    await h.jobs.prologue(prologueInput());
    await assert.rejects(steps.prologue(step({ image: OTHER, options: named('box', { nameFlag: 'exec' }) })),
      code('NO_CONTAINER', /--container-name=box:exec joins a container that exists, and the job has none named 'box' on n1; make it first with srun --container-image=IMAGE --container-name=box, or drop :exec/));
    const made = await steps.prologue(step({ stepId: '1', image: OTHER, options: named('box', { nameFlag: 'create' }) }));
    assert.equal(made.containerName, 'berth-n1-job-42-name-box');
    await assert.rejects(steps.prologue(step({ stepId: '2', options: named('box', { nameFlag: 'create' }) })),
      code('NAME_CLASH', /box:create makes a new container, but the job has one named 'box' on n1 already; drop :create to join it/));
    assert.equal((await steps.prologue(step({ stepId: '3', options: named('box', { nameFlag: 'exec' }) }))).containerName, made.containerName);
    assert.equal((await steps.prologue(step({ stepId: '4', options: named('box', { nameFlag: 'no_exec' }) }))).containerName, made.containerName);
  });

  it("joins a running unnamed step's container by JOB.STEP, as pyxis names it, and no other job's", async () => {
    const { h, steps, step, named } = setup();
    await h.jobs.prologue(prologueInput());
    const first = await steps.prologue(step({ stepId: '5', image: OTHER }));
    assert.equal(first.containerName, 'berth-n1-job-42-step-5');
    const joined = await steps.prologue(step({ stepId: '6', options: named('42.5') }));
    assert.equal(joined.containerName, first.containerName);
    await assert.rejects(steps.prologue(step({ stepId: '7', options: named('41.5') })), code('NO_CONTAINER', /no container named '41\.5'/));
  });

  it('warns, instead of dropping them silently, when a step joining an existing container gives options that only apply when one is made', async () => {
    const { h, steps, step, named } = setup();
    await h.jobs.prologue(prologueInput());
    await steps.prologue(step({ image: OTHER, options: named('box') }));
    const res = await steps.prologue(step({ stepId: '1', options: named('box', { mounts: [{ source: '/tmp', target: '/mnt/x', readOnly: false }], readOnly: true }) }));
    assert.deepEqual(res.warnings, ["berth: warning: ignoring --container-mounts, --container-readonly when joining the existing container 'box': its mounts and root file system were set when it was made; give them to the srun that makes it, or use another --container-name"]);
    assert.deepEqual((await steps.prologue(step({ stepId: '2', options: named('box') }))).warnings, []);
  });
});

describe('a propagation the node cannot give', () => {
  it("is the job's fault (MOUNT_REFUSED, the node stays in service), saying what to leave out", async () => {
    const { containerFailure } = await import('../../services/agent/docker/engine-errors');
    const { faultOf } = await import('../../services/shared/fault-class');
    const err = Object.assign(new Error('(HTTP code 500) server error - path /home/alice/x is mounted on / but it is not a shared or slave mount'), { statusCode: 500 });
    const e = containerFailure('42', 'i@sha256:' + 'a'.repeat(64), err, ['/home/alice/x']);
    assert.equal(e.code, 'MOUNT_REFUSED');
    assert.equal(faultOf(e.code), 'job');
    assert.match(e.message, /\/home\/alice\/x is on the host mount \/, which is private on this node, so slave propagation \(slave, rslave\) cannot be had for it; leave the propagation out/);
  });

  it("takes a tmpfs option dockerd refuses as the job's (the node stays in service)", async () => {
    const { containerFailure } = await import('../../services/agent/docker/engine-errors');
    const { faultOf } = await import('../../services/shared/fault-class');
    const err = Object.assign(new Error('(HTTP code 400) unexpected - invalid tmpfs option ["huge" "within_size"]'), { statusCode: 400 });
    const e = containerFailure('42', 'i@sha256:' + 'a'.repeat(64), err, []);
    assert.equal(e.code, 'MOUNT_REFUSED');
    assert.equal(faultOf(e.code), 'job');
    assert.match(e.message, /^job 42: --container-mounts: dockerd on this node refuses a tmpfs option \(.*invalid tmpfs option \["huge" "within_size"\]\); leave the option out/);
  });
});
