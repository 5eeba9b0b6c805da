// One job id grammar for every boundary.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isJobId } from '../../services/shared/ids';
import { isCertificateJobId } from '../../services/agent/certs/job-certificate';
import { checkPrologueRequest } from '../../services/agent/jobs/prologue-request';

describe('job ids', () => {
  it('takes Slurm job ids and nothing else, the same everywhere', () => {
    for (const ok of ['1', '42', '4294967295', '9'.repeat(20)]) {
      assert.ok(isJobId(ok), ok);
      assert.ok(isCertificateJobId(ok), `certificate: ${ok}`);
    }
    for (const bad of ['', '9'.repeat(21), '-1', '1.0', '12_3', ' 1', '1\n', '0x1f', '../1']) {
      assert.equal(isJobId(bad), false, JSON.stringify(bad));
      assert.equal(isCertificateJobId(bad), false, `certificate: ${JSON.stringify(bad)}`);
    }
  });

  it('refuses a prologue whose job id is not one, naming it', () => {
    const req = { jobId: '9'.repeat(21), uid: 2001, gid: 2001, user: 'alice', image: 'x', workDir: '/', cpus: 1, memoryBytes: 1 };
    assert.throws(() => checkPrologueRequest(req), /job id '9{21}' is not a Slurm job id/);
  });
});
