import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { allocationOnNode, prologueRequest } from '../../services/cli/hook';
import { containerImage, expandCounts } from '../../services/cli/slurm-env';
import { runExec, EXIT_BERTH_ERROR } from '../../services/cli/exec';
import { PassThrough } from 'node:stream';

describe('hook environment', () => {
  it('finds the image from the SPANK plugin in either form', () => {
    assert.equal(containerImage({ SPANK_BERTH_CONTAINER_IMAGE: 'reg/x:1' }), 'reg/x:1');
    assert.equal(containerImage({ SPANK__SLURM_SPANK_OPTION_berth_container_image: ' reg/y:2 ' }), 'reg/y:2');
    assert.equal(containerImage({ SLURM_JOB_ID: '1' }), '');
  });

  it('builds the prologue request from the prolog environment', () => {
    const req = prologueRequest({
      SLURM_JOB_ID: '17', SLURM_JOB_UID: '2001', SLURM_JOB_GID: '2001', SLURM_JOB_USER: 'alice', SLURM_JOB_WORK_DIR: '/home/alice',
      SPANK_BERTH_CONTAINER_IMAGE: 'reg/x:1', SLURM_CPUS_ON_NODE: '2', SLURM_MEM_PER_NODE: '1000', SLURM_JOB_NODELIST: 'n[1-2]', SLURM_JOB_NUM_NODES: '2',
    });
    assert.deepEqual([req.jobId, req.uid, req.gid, req.user, req.image, req.workDir, req.cpus, req.memoryBytes, req.numNodes],
      ['17', 2001, 2001, 'alice', 'reg/x:1', '/home/alice', 2, 1000 * 1024 * 1024, 2]);
  });

  it('derives memory from the per-CPU figure when there is no per-node one', () => {
    assert.deepEqual(allocationOnNode({ SLURM_CPUS_ON_NODE: '4', SLURM_MEM_PER_CPU: '100' }), { cpus: 4, memoryBytes: 400 * 1024 * 1024 });
    assert.deepEqual(allocationOnNode({}), { cpus: 0, memoryBytes: 0 });
  });

  it('expands Slurm per-node counts', () => {
    assert.deepEqual(expandCounts('2(x3),1'), [2, 2, 2, 1]);
  });
});

describe('berth exec refusals', () => {
  async function run(env: Record<string, string>, cmd: string[]): Promise<{ code: number; err: string }> {
    const stderr = new PassThrough();
    let err = '';
    stderr.on('data', (d: Buffer) => (err += d.toString()));
    const code = await runExec(cmd, env, { stdin: new PassThrough(), stdout: new PassThrough(), stderr });
    return { code, err };
  }

  it('refuses to run outside an allocation, saying how to run it', async () => {
    const { code, err } = await run({}, ['id']);
    assert.equal(code, EXIT_BERTH_ERROR);
    assert.match(err, /not inside a Slurm allocation \(SLURM_JOB_ID is not set\)/);
  });

  it('refuses an empty command', async () => {
    const { code, err } = await run({ SLURM_JOB_ID: '3', SLURMD_NODENAME: 'n1' }, []);
    assert.equal(code, EXIT_BERTH_ERROR);
    assert.match(err, /no command given/);
  });
});

describe('per-node CPUs from the prolog environment', () => {
  it("takes this node's entry of SLURM_JOB_CPUS_PER_NODE by its place in the node list", () => {
    assert.equal(allocationOnNode({ SLURM_JOB_NODELIST: 'n[1-2]', SLURMD_NODENAME: 'n2', SLURM_JOB_CPUS_PER_NODE: '2,1' }).cpus, 1);
    assert.equal(allocationOnNode({ SLURM_JOB_NODELIST: 'n[1-3]', SLURMD_NODENAME: 'n3', SLURM_JOB_CPUS_PER_NODE: '2(x2),4' }).cpus, 4);
  });
});
