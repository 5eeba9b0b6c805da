// pyxis's --container-unshare=net,ipc,uts: read at submit (unknown names refused with the
// accepted list), carried to berthd, made into the container (NetworkMode none, IpcMode
// private, the label the steps read), refused when a step asks a container for a namespace it
// lacks, and written into the task file whose ns= lines the SPANK plugin joins.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { OptionError, optionsFromEnv, optionsToEnv, parseUnshare } from '../../services/shared/container-options';
import { PYXIS_ALIASES, SPANK_OPTIONS, STEP_PROLOG_VARS } from '../../services/shared/spank-options';
import { buildJobContainerSpec, unsharedOf, UNSHARE_LABEL } from '../../services/agent/containers/job-container-spec';
import { checkPrologueRequest } from '../../services/agent/jobs/prologue-request';
import { fromProtoOptions } from '../../services/agent/server/proto-mapping';
import { StepContainers } from '../../services/agent/steps/step-containers';
import { TaskFiles } from '../../services/agent/steps/task-files';
import { prologueRequest } from '../../services/cli/hook';
import { runSubmitCheck } from '../../services/shared/submit-check';
import { BerthError } from '../../services/shared/errors';
import { harness, prologueInput } from './fakes/helpers';

describe('--container-unshare', () => {
  it('takes pyxis\'s names, each once, in net, ipc, uts order', () => {
    assert.deepEqual(parseUnshare(''), []);
    assert.deepEqual(parseUnshare('  '), []);
    assert.deepEqual(parseUnshare('net'), ['net']);
    assert.deepEqual(parseUnshare(' uts, net ,uts,ipc'), ['net', 'ipc', 'uts']);
  });

  it('refuses an unknown namespace (as pyxis: "unknown namespace") with the list berth takes, and an empty one', () => {
    assert.throws(() => parseUnshare('foo'), (e: unknown) => e instanceof OptionError && e.message === "--container-unshare: unknown namespace 'foo'; berth takes net, ipc, uts, separated by commas");
    assert.throws(() => parseUnshare('net,foo'), /unknown namespace 'foo'/);
    assert.throws(() => parseUnshare('pid'), /unknown namespace 'pid'/);
    assert.throws(() => parseUnshare('NET'), /unknown namespace 'NET'/);
    assert.throws(() => parseUnshare('net,'), /has an empty namespace/);
    assert.throws(() => parseUnshare('net,,uts'), /has an empty namespace/);
  });

  it('round-trips through BERTH_CONTAINER_UNSHARE and is left out when not given', () => {
    const o = optionsFromEnv({ SPANK_BERTH_CONTAINER_UNSHARE: 'uts,net' }, 'SPANK_');
    assert.deepEqual(o.unshare, ['net', 'uts']);
    assert.deepEqual(optionsToEnv(o), { BERTH_CONTAINER_UNSHARE: 'net,uts' });
    assert.equal('unshare' in optionsFromEnv({}), false);
    assert.deepEqual(optionsToEnv(optionsFromEnv({})), {});
  });

  it('is an option of the plugin with PYXIS_CONTAINER_UNSHARE as its alias, handed to the step prolog', () => {
    const row = SPANK_OPTIONS.find((r) => r.name === 'container-unshare');
    assert.deepEqual([row?.env, row?.arg], ['BERTH_CONTAINER_UNSHARE', 'NS[,NS...]']);
    assert.ok(PYXIS_ALIASES.some((a) => a.pyxis === 'PYXIS_CONTAINER_UNSHARE' && a.env === 'BERTH_CONTAINER_UNSHARE' && !a.invert));
    assert.ok(STEP_PROLOG_VARS.includes('BERTH_CONTAINER_UNSHARE'));
    const header = readFileSync(path.join(import.meta.dirname, '..', '..', 'scripts', 'native', 'berth_options.h'), 'utf8');
    assert.match(header, /\{ "container-unshare", "NS\[,NS\.\.\.\]", /);
    assert.match(header, /\{ "PYXIS_CONTAINER_UNSHARE", OPT_UNSHARE, 0 \}/);
  });

  it('is refused at submit when a name is unknown, and printed normalised otherwise', async () => {
    const run = async (env: Record<string, string>) => {
      let out = '';
      let err = '';
      const code = await runSubmitCheck(env, (s) => (out += s), (s) => (err += s), { who: { uid: 4242, gids: [4242] } });
      return { code, out, err };
    };
    const bad = await run({ SLURM_JOB_ID: '12', BERTH_CONTAINER_UNSHARE: 'net,foo' });
    assert.equal(bad.code, 1);
    assert.match(bad.err, /^berth: --container-unshare: unknown namespace 'foo'; berth takes net, ipc, uts/);
    const good = await run({ SLURM_JOB_ID: '12', BERTH_CONTAINER_NAME: 'box', BERTH_CONTAINER_UNSHARE: 'uts,net' });
    assert.equal(good.code, 0, good.err);
    assert.equal(good.out, 'BERTH_CONTAINER_NAME=box\nBERTH_CONTAINER_UNSHARE=net,uts\n');
    const alone = await run({ SLURM_JOB_ID: '12', BERTH_CONTAINER_UNSHARE: 'net' });
    assert.equal(alone.code, 1);
    assert.match(alone.err, /--container-unshare.* need --container-image/);
  });

  it('reaches berthd in the request, and berthd holds a request that did not come through the plugin to the same rules', () => {
    const req = prologueRequest({
      SLURM_JOB_ID: '7', SLURM_JOB_UID: '1000', SLURM_JOB_GID: '1000', SPANK_BERTH_CONTAINER_IMAGE: 'r/i@sha256:' + 'a'.repeat(64), SPANK_BERTH_CONTAINER_UNSHARE: 'ipc,net',
    });
    assert.deepEqual(req.options.unshare, ['net', 'ipc']);
    assert.deepEqual(fromProtoOptions({ ...req.options, unshare: ['net', 'ipc'] } as never).unshare, ['net', 'ipc']);
    assert.equal('unshare' in fromProtoOptions({ ...req.options, unshare: [] } as never), false);
    const input = { ...prologueInput(), options: { mounts: [], workdir: '', envNames: [], name: '', unshare: ['foo'] as never } };
    assert.throws(() => checkPrologueRequest(input), (e: unknown) => e instanceof BerthError && e.code === 'OPTIONS_INVALID' && /unknown namespace 'foo'/.test(e.message));
  });
});

describe('a container with --container-unshare', () => {
  const spec = (unshare?: ('net' | 'ipc' | 'uts')[]) => buildJobContainerSpec({
    identity: { jobId: '42', node: 'n1', uid: 2001, gid: 2001, user: 'alice', imageRef: 'i', imageDigest: 'i@sha256:' + 'a'.repeat(64), workDir: '' } as never,
    image: 'i@sha256:' + 'a'.repeat(64), supplementaryGids: [], cpus: 1, memoryBytes: 0, devices: [], mounts: [], initBinary: '/init', memlockBytes: -1,
    userFiles: { passwd: '/p', group: '/g' }, ...(unshare ? { unshare, hostname: 'node1' } : {}),
  }).body as { HostConfig: Record<string, unknown>; Labels: Record<string, string>; Hostname?: string };

  it("keeps berth's default without it: the host's network, Docker's IPC namespace, no label", () => {
    const b = spec();
    assert.equal(b.HostConfig.NetworkMode, 'host');
    assert.equal('IpcMode' in b.HostConfig, false);
    assert.equal(UNSHARE_LABEL in b.Labels, false);
    assert.equal('Hostname' in b, false);
  });

  it('net: no network but loopback, with the node\'s hostname; ipc: a private IPC namespace; the label says which', () => {
    const b = spec(['net', 'ipc', 'uts']);
    assert.equal(b.HostConfig.NetworkMode, 'none');
    assert.equal(b.HostConfig.IpcMode, 'private');
    assert.equal(b.Hostname, 'node1');
    assert.equal(b.Labels[UNSHARE_LABEL], 'net,ipc,uts');
    const u = spec(['uts']);
    assert.deepEqual([u.HostConfig.NetworkMode, 'IpcMode' in u.HostConfig, 'Hostname' in u, u.Labels[UNSHARE_LABEL]], ['host', false, false, 'uts']);
    assert.deepEqual(unsharedOf({ [UNSHARE_LABEL]: 'uts,bogus,net' }), ['net', 'uts']);
    assert.deepEqual(unsharedOf({}), []);
  });
});

describe('steps and --container-unshare', () => {
  function setup() {
    const h = harness();
    const files = new TaskFiles(path.join(h.dir, 'run', 'n1', 'tasks'));
    const steps = new StepContainers({ factory: h.factory, ledger: h.ledger, table: h.table, engine: h.engine, files, node: 'n1', log: h.log });
    const step = (over: Partial<Parameters<StepContainers['prologue']>[0]> = {}) => ({ jobId: '42', stepId: '0', uid: 2001, gid: 2001, user: 'alice', image: '', argv: ['true'], ...over });
    const opts = (over: object = {}) => ({ mounts: [], workdir: '', envNames: [], name: '', ...over });
    return { h, files, steps, step, opts };
  }
  const nsLines = (text: string | undefined) => (text ?? '').split('\n').filter((l) => l.startsWith('ns='));

  it("a step's own container gets the namespaces, and its task file names the network and UTS ones for the tasks to join", async () => {
    const { h, files, steps, step, opts } = setup();
    await h.jobs.prologue(prologueInput());
    const image = prologueInput().image;
    const made = await steps.prologue(step({ stepId: '1', image, options: opts({ unshare: ['net', 'ipc', 'uts'] }) }));
    assert.equal(made.stepContainer, true, 'the job container has none of them: the step gets its own');
    assert.deepEqual(nsLines(files.read('42', '1')), ['ns=net', 'ns=uts']);
    // a later step naming none joins the job's container, with the host's network and UTS namespaces
    await steps.prologue(step({ stepId: '2' }));
    assert.deepEqual(nsLines(files.read('42', '2')), []);
  });

  it('joining a container that lacks a namespace asked for fails as pyxis does; ipc is always there', async () => {
    const { h, steps, step, opts } = setup();
    await h.jobs.prologue(prologueInput());
    await assert.rejects(steps.prologue(step({ stepId: '1', options: opts({ unshare: ['uts'] }) })),
      (e: unknown) => e instanceof BerthError && /--container-unshare=uts was given, but container \S+ is not in a separate UTS namespace/.test(e.message));
    await assert.rejects(steps.prologue(step({ stepId: '2', options: opts({ unshare: ['net', 'uts'] }) })), /not in a separate network or UTS namespace/);
    const ipc = await steps.prologue(step({ stepId: '3', options: opts({ unshare: ['ipc'] }) }));
    assert.equal(ipc.stepContainer, false, "berth's containers always have an IPC namespace of their own");
  });

  it('a named container made with them is joined with them by name', async () => {
    const { h, files, steps, step, opts } = setup();
    await h.jobs.prologue(prologueInput());
    const image = prologueInput().image;
    await steps.prologue(step({ stepId: '1', image, options: opts({ name: 'box', unshare: ['net'] }) }));
    await steps.prologue(step({ stepId: '2', options: opts({ name: 'box' }) }));
    assert.deepEqual(nsLines(files.read('42', '2')), ['ns=net']);
    await steps.prologue(step({ stepId: '3', options: opts({ name: 'box', unshare: ['net'] }) }));
    await assert.rejects(steps.prologue(step({ stepId: '4', options: opts({ name: 'box', unshare: ['uts'] }) })), /not in a separate UTS namespace/);
    await assert.rejects(steps.prologue(step({ stepId: '5', options: opts({ unshare: ['bogus'] }) })), (e: unknown) => e instanceof BerthError && e.code === 'OPTIONS_INVALID');
  });
});
