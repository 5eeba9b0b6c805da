// One job id grammar for every boundary.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { BerthError } from '../../services/shared/errors';
import { status } from '../../services/shared/grpc-status';
import { isJobId, isStepId, type JobId, parseJobId, parseStepId, type StepId } from '../../services/shared/ids';
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

describe('parsing ids at a boundary', () => {
  const refused = (fn: () => unknown, message: string) =>
    assert.throws(fn, (e: unknown) => e instanceof BerthError && e.code === 'INVALID_REQUEST' && e.grpcStatus === grpc.status.INVALID_ARGUMENT && e.message === message);

  it('gives back a job id as it came, typed as checked', () => {
    for (const ok of ['1', '42', '9'.repeat(20)]) {
      const id: JobId = parseJobId(ok);
      assert.equal(id, ok);
    }
  });

  it('refuses anything else, saying where it came from, what was wrong and what a job id looks like', () => {
    refused(() => parseJobId('12_3', 'SLURM_JOB_ID'), "SLURM_JOB_ID: job id '12_3' is not a Slurm job id: a job id is digits only, at most 20, as squeue shows it (e.g. 1234)");
    refused(() => parseJobId('', 'GetJob'), 'GetJob: no job id was given: a job id is digits only, at most 20, as squeue shows it (e.g. 1234)');
    refused(() => parseJobId('../1'), "job id '../1' is not a Slurm job id: a job id is digits only, at most 20, as squeue shows it (e.g. 1234)");
    for (const bad of ['9'.repeat(21), '-1', ' 1', '1\n', '0x1f']) assert.throws(() => parseJobId(bad), BerthError, JSON.stringify(bad));
  });

  it("takes a step's number or 'batch' as a step id, and nothing else", () => {
    for (const ok of ['0', '17', 'batch']) {
      const id: StepId = parseStepId(ok);
      assert.equal(id, ok);
      assert.ok(isStepId(ok));
    }
    refused(() => parseStepId('0;rm', 'StepPrologue'), "StepPrologue: step id '0;rm' is not a Slurm step id: a step id is digits or 'batch', as squeue --steps shows it after the job id and a dot (e.g. 1234.0)");
    refused(() => parseStepId(''), "no step id was given: a step id is digits or 'batch', as squeue --steps shows it after the job id and a dot (e.g. 1234.0)");
    for (const bad of ['extern', 'Batch', '1.0', '-1', '../0', '9'.repeat(21)]) assert.equal(isStepId(bad), false, bad);
  });
});

describe("the error catalogue's gRPC status numbers", () => {
  it('are the ones @grpc/grpc-js has (spelled in shared/grpc-status.ts so that the id parser does not load it)', () => {
    for (const [name, n] of Object.entries(status)) assert.equal(n, grpc.status[name as keyof typeof grpc.status], name);
  });
});

describe("the hooks' fast path", () => {
  it('parses ids without loading @grpc/grpc-js (cli/main.ts imports slurm-env.ts for every job on every node)', () => {
    const repo = path.resolve(import.meta.dirname, '../..');
    const probe = `import { createRequire } from 'node:module';
await import(${JSON.stringify(path.join(repo, 'services/cli/slurm-env.ts'))});
const { parseJobId } = await import(${JSON.stringify(path.join(repo, 'services/shared/ids.ts'))});
try { parseJobId('x'); } catch {}
console.log(Object.keys(createRequire(import.meta.url).cache).filter((k) => k.includes('grpc-js')).length);`;
    const out = execFileSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', probe], { cwd: repo, encoding: 'utf8' });
    assert.equal(out.trim(), '0');
  });
});
