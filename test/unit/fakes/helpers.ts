// Builders shared by the unit tests.
import { mkdtempSync, readFileSync, existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import winston from 'winston';
import { AccountingLog } from '../../../services/agent/accounting/accounting-log';
import { type AgentConfig, loadConfig } from '../../../services/agent/config';
import type { IdentityResolver, UserIdentity } from '../../../services/agent/identity/nss';
import { ImageService } from '../../../services/agent/images/image-service';
import { ImageUserFilesCache } from '../../../services/agent/containers/image-user-files';
import { ContainerFactory } from '../../../services/agent/containers/container-factory';
import { JobService } from '../../../services/agent/jobs/job-service';
import { StepLedger } from '../../../services/agent/jobs/step-ledger';
import { JobTable } from '../../../services/agent/jobs/job-table';
import { silentLogger } from '../../../services/agent/logger';
import { FakeEngine } from './fake-engine';
import type { ContainerUsage } from '../../../services/agent/docker/container-usage';
import type { AllocationSource } from '../../../services/agent/jobs/slurm-allocation';
import type { ContainerSeal } from '../../../services/agent/containers/seal';

export const ALICE: UserIdentity = {
  name: 'alice', uid: 2001, gid: 2001, gecos: 'Alice', home: '/home/alice', shell: '/bin/bash',
  groups: [{ gid: 2001, name: 'alice' }, { gid: 2100, name: 'berth-demo' }],
};

export class FakeIdentities implements IdentityResolver {
  async lookup(uid: number, expectedName?: string): Promise<UserIdentity> {
    if (uid !== ALICE.uid) throw new Error(`uid ${uid} unknown`);
    if (expectedName && expectedName !== ALICE.name) throw new Error('name mismatch');
    return ALICE;
  }
}

/** A container's cgroup as the epilogue and steps read it: each read finds 1.5 CPU seconds more and a higher peak. */
export class FakeUsage {
  reads: string[] = [];
  cpuNanos = 0;
  peak = 10 * 1024 * 1024;
  fail = false;
  async containerUsage(id: string): Promise<ContainerUsage | undefined> {
    this.reads.push(id);
    if (this.fail) throw new Error('cgroup gone');
    this.cpuNanos += 1_500_000_000;
    this.peak += 1024 * 1024;
    return { cpuNanos: this.cpuNanos, memoryPeakBytes: this.peak, source: 'cgroup-v2' };
  }
}

export const DIGEST = 'sha256:' + 'a'.repeat(64);
export const IMAGE = '127.0.0.1:5000/berth/demo:1.0';

export function harness(overrides: Record<string, unknown> = {}, opts: { seal?: ContainerSeal; allocations?: AllocationSource } = {}) {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'berth-unit-'));
  const config: AgentConfig = loadConfig(undefined, {
    node: 'n1', stateDir: path.join(dir, 'state'), accountingFile: path.join(dir, 'acct.jsonl'), initBinary: '/opt/berth/berth-init',
    rdmaDevices: [path.join(dir, 'dev', 'uverbs*')], ...overrides,
  });
  const engine = new FakeEngine();
  engine.digests.set(IMAGE, DIGEST);
  const log = silentLogger();
  const images = new ImageService(engine, engine, { timeoutMs: 1000, inactivityMs: 1000 }, log);
  const table = new JobTable(config.stateDir);
  const imageUserFiles = new ImageUserFilesCache(engine, config.node);
  const usage = new FakeUsage();
  /** berthd's job parts over a table: a fresh one stands for berthd after a restart */
  const newNode = (t = table) => {
    const factory = new ContainerFactory({
      config, engine, images, imageUserFiles, identities: new FakeIdentities(), log, memlockBytes: -1, seal: opts.seal, allocations: opts.allocations,
      // the unit tests' paths do not exist: every one is reachable but those under /unreachable/
      reachable: (p, who, what) => {
        if (p.includes('/unreachable/')) throw new Error(`${what} ${p}: uid ${who.uid} may not enter ${p.slice(0, p.indexOf('/unreachable/') + 12)} (mode 700), so it may not mount what is below it`);
        return p;
      },
    });
    const ledger = new StepLedger({ table: t, log, usage });
    const jobs = new JobService({ config, engine, factory, ledger, table: t, accounting: new AccountingLog(config.accountingFile), log, seal: opts.seal });
    return { jobs, factory, ledger };
  };
  const newJobService = (t = table) => newNode(t).jobs;
  const { jobs, factory, ledger } = newNode();
  const accounting = (): Record<string, unknown>[] => existsSync(config.accountingFile)
    ? readFileSync(config.accountingFile, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>)
    : [];
  return { dir, config, engine, images, table, jobs, factory, ledger, log, accounting, newJobService, newNode, usage };
}

export function prologueInput(over: Partial<Parameters<JobService['prologue']>[0]> = {}) {
  return { jobId: '42', uid: 2001, gid: 2001, user: 'alice', image: IMAGE, workDir: '/home/alice/run', cpus: 2, memoryBytes: 1 << 30, ...over };
}

/** a logger whose lines (JSON objects) the test reads; messages() once what was logged has been written */
export function capturingLogger() {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      lines.push(JSON.parse(chunk.toString()) as Record<string, unknown>);
      cb();
    },
  });
  const log = winston.createLogger({ level: 'debug', format: winston.format.json(), transports: [new winston.transports.Stream({ stream })] });
  return { log, lines, messages: async () => {
    await new Promise((r) => setImmediate(r));
    return lines.map((l) => String(l.message));
  } };
}
