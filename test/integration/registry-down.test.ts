// With the registry stopped, a job whose image is cached on the node (pinned by digest at
// submit) still starts without contacting it; an uncached one fails with the reason. The
// registry is started again afterwards (scripts/sandbox up starts only what is missing).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chownSync, mkdtempSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { AccountingLog } from '../../services/agent/accounting/accounting-log';
import { loadConfig } from '../../services/agent/config';
import { ImageUserFilesCache } from '../../services/agent/containers/image-user-files';
import { nodeMemlock } from '../../services/agent/containers/memlock';
import { DockerodeEngine } from '../../services/agent/docker/dockerode-engine';
import { NssIdentityResolver } from '../../services/agent/identity/nss';
import { ImageService } from '../../services/agent/images/image-service';
import { jobParts } from '../support/job-parts';
import { JobTable } from '../../services/agent/jobs/job-table';
import { silentLogger } from '../../services/agent/logger';
import { BerthError } from '../../services/shared/errors';
import { RegistryClient } from '../../services/shared/images/registry-client';
import { node, REPO, sandbox, uidOf } from '../support/stack';

describe('registry down', { timeout: 90_000 }, () => {
  after(() => {
    execFileSync(path.join(REPO, 'scripts/sandbox'), ['up', '--no-build'], { stdio: 'ignore' });
  });

  it('starts a cached digest without the registry, and says why an uncached one cannot start', async () => {
    const n1 = node('n1');
    const dir = mkdtempSync(path.join(os.tmpdir(), 'berth-regdown-'));
    const alice = uidOf('alice');
    const work = mkdtempSync(path.join(os.tmpdir(), 'berth-regdown-work-'));
    chownSync(work, alice, alice);
    const config = loadConfig(undefined, {
      node: 'itest-regdown', stateDir: path.join(dir, 'state'), accountingFile: path.join(dir, 'acct.jsonl'),
      dockerHost: `unix://${n1.dockerSocket}`, initBinary: '/usr/local/lib/berth/berth-init', stopGraceSeconds: 1,
    });
    const log = silentLogger();
    const engine = new DockerodeEngine(n1.dockerSocket);
    const images = new ImageService(engine, new RegistryClient(3000), { timeoutMs: 20_000, inactivityMs: 10_000 }, log);
    const { jobs } = jobParts({
      config, engine, images, imageUserFiles: new ImageUserFilesCache(engine, config.node), identities: new NssIdentityResolver(),
      table: new JobTable(config.stateDir), accounting: new AccountingLog(config.accountingFile), log, memlockBytes: nodeMemlock(-1).bytes,
    });
    const cached = (await images.ensure(sandbox().demoImage)).digestRef; // present on n1 now
    const pid = readFileSync('/run/berth-sandbox/registry.pid', 'utf8').trim();
    execFileSync('kill', [pid]);
    for (let i = 0; i < 50; i++) {
      try {
        execFileSync('kill', ['-0', pid], { stdio: 'ignore' });
        await new Promise((r) => setTimeout(r, 100));
      } catch {
        break;
      }
    }
    const input = (jobId: string, image: string) => ({ jobId, uid: alice, gid: alice, user: 'alice', image, workDir: work, cpus: 1, memoryBytes: 0 });
    const started = await jobs.prologue(input('930001', cached));
    assert.equal(started.job.state, 'RUNNING');
    assert.equal(started.job.imageDigest, cached);
    await jobs.epilogue('930001');
    const uncached = `127.0.0.1:5000/berth/demo@sha256:${'0'.repeat(64)}`;
    await assert.rejects(jobs.prologue(input('930002', uncached)), (e: unknown) =>
      e instanceof BerthError && e.code === 'REGISTRY_UNAVAILABLE' && /registry 127\.0\.0\.1:5000 could not be reached for image '127\.0\.0\.1:5000\/berth\/demo@sha256:0+'/.test(e.message));
    await assert.rejects(jobs.prologue(input('930003', sandbox().demoImage)), (e: unknown) =>
      e instanceof BerthError && e.code === 'REGISTRY_UNAVAILABLE', 'a tag still needs the registry: submit pins it while the registry is up');
  });
});
