// Accounting at scale (issue 6): 100,000 realistic records (jobs of 1-8 steps, 60 users,
// 30 days) written through the rotating log, then served by a real berthd of our own
// (dist/berthd.js against n1's dockerd): QueryAccounting for everything and filtered by job,
// user and time, and `berth accounting --format csv`, with ms, records/s and berthd's RSS.
// Figures only, no assertions.   npm run build && npm run bench:accounting [-- --records N]
import { spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { AccountingLog } from '../services/agent/accounting/accounting-log';
import { accountingRecords } from '../services/agent/accounting/accounting-record';
import type { JobProvenance } from '../services/agent/jobs/job-provenance';
import type { JobRecord, StepRecord } from '../services/agent/jobs/job-record';
import { queryNode } from '../services/cli/accounting';
import { REPO } from '../test/support/stack';
import { rssOf, startOwnBerthd } from './support/own-berthd';

const total = Number(process.argv[process.argv.indexOf('--records') + 1]) || 100_000;
const NODE = 'acct-bench';
const MB = 1024 * 1024;
const fmt = (n: number, d = 0) => n.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d });

const berthd = await startOwnBerthd(NODE, { accountingRotation: { maxBytes: 8 * MB, keep: 50 } });
process.env.BERTH_RUN_DIR = berthd.runDir;
const file = path.join(berthd.dir, 'accounting.jsonl');
try {
  // --- write -----------------------------------------------------------------------------
  const log = new AccountingLog(file, { maxBytes: 8 * MB, keep: 50 });
  const t0 = Date.parse('2026-04-01T00:00:00Z');
  let written = 0;
  let jobId = 5_000_000;
  let seed = 42;
  const rand = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  const provenance: JobProvenance = {
    account: 'physics', partition: 'batch', registry: 'registry.site:5000', pulled: false, pullMillis: 12, pullBytes: 0, startLatencyMillis: 180,
    mounts: [{ Source: '/usr/local/lib/berth/berth-init', Target: '/.berth/init', ReadOnly: true }, { Source: '/var/lib/berth/jobs/1/passwd', Target: '/etc/passwd', ReadOnly: true },
      { Source: '/var/lib/berth/jobs/1/group', Target: '/etc/group', ReadOnly: true }, { Source: '/home/u/run', Target: '/home/u/run', ReadOnly: false }, { Source: '/scratch', Target: '/scratch', ReadOnly: false }],
    devices: ['/dev/infiniband/uverbs0', '/dev/infiniband/rdma_cm'],
  };
  const writeBegan = performance.now();
  while (written < total) {
    const id = String(jobId++);
    const u = Math.floor(rand() * 60);
    const start = t0 + Math.floor((written / total) * 30 * 86_400_000);
    const nSteps = Math.min(total - written - 1, 1 + Math.floor(rand() * 8));
    const steps: StepRecord[] = Array.from({ length: nSteps }, (_, i) => ({
      stepId: String(i), taskId: 0, argv: ['python3', 'train.py', `--epoch=${i}`], state: 'EXITED', exitCode: rand() < 0.05 ? 1 : 0, signal: '',
      startTime: new Date(start + i * 60_000).toISOString(), endTime: new Date(start + i * 60_000 + 50_000).toISOString(),
      usage: { cpuNanos: Math.floor(rand() * 4e12), memoryPeakBytes: Math.floor(rand() * 8e9), source: 'cgroup-v2' },
    }));
    const job: JobRecord = {
      jobId: id, node: NODE, uid: 3000 + u, gid: 3000 + u, user: `user${u}`, imageRef: 'registry.site:5000/ml/pytorch:24.03',
      imageDigest: `registry.site:5000/ml/pytorch@sha256:${'ab'.repeat(32)}`, workDir: `/home/user${u}/run`, startTime: new Date(start).toISOString(),
      containerId: 'f'.repeat(64), containerName: `berth-${NODE}-job-${id}`, state: 'ENDED', endTime: '', error: '', steps, userContainers: [], provenance,
    };
    log.append(accountingRecords(job, new Date(start + nSteps * 60_000 + 5000).toISOString(), { cpuNanos: 9e12, memoryPeakBytes: 12e9, source: 'cgroup-v2' }));
    written += 1 + nSteps;
  }
  const writeMs = performance.now() - writeBegan;
  const files = readdirSync(berthd.dir).filter((f) => f.startsWith('accounting.jsonl'));
  const bytes = files.reduce((s, f) => s + statSync(path.join(berthd.dir, f)).size, 0);
  console.log(`wrote ${fmt(written)} records (${fmt(jobId - 5_000_000)} jobs) in ${files.length} files, ${fmt(bytes / MB, 1)} MiB, ${fmt(bytes / written)} B/record: ${fmt(writeMs)} ms, ${fmt(written / (writeMs / 1000))} records/s`);
  console.log(`berthd ${NODE} RSS before queries: ${fmt(rssOf(berthd.pid).rss / MB, 1)} MiB`);

  // --- RPC ---------------------------------------------------------------------------------
  const midJob = String(5_000_000 + Math.floor((jobId - 5_000_000) / 2));
  const cases: [string, Partial<Parameters<typeof queryNode>[1]>][] = [
    ['all', {}],
    [`job ${midJob}`, { jobId: midJob }],
    ['user user7', { user: 'user7' }],
    ['uid 3007', { uid: 3007 }],
    ['one day (2026-04-15)', { since: '2026-04-15T00:00:00Z', until: '2026-04-15T23:59:59Z' }],
    ['jobs only', { jobsOnly: true }],
  ];
  for (const [name, filter] of cases) {
    const runs: number[] = [];
    let n = 0;
    for (let i = 0; i < 3; i++) {
      const began = performance.now();
      n = (await queryNode(NODE, { since: '', until: '', jobId: '', user: '', uid: 0, jobsOnly: false, ...filter })).length;
      runs.push(performance.now() - began);
    }
    const ms = [...runs].sort((a, b) => a - b)[1]!;
    console.log(`QueryAccounting ${name.padEnd(22)} ${fmt(n).padStart(8)} records  ${fmt(ms).padStart(6)} ms  ${fmt(n / (ms / 1000)).padStart(9)} records/s  (median of 3; client parses every record)`);
  }
  const afterRpc = rssOf(berthd.pid);
  console.log(`berthd RSS after queries: ${fmt(afterRpc.rss / MB, 1)} MiB (peak ${fmt(afterRpc.peak / MB, 1)} MiB)`);

  // --- CLI ---------------------------------------------------------------------------------
  const cli = path.join(REPO, 'dist/berth.js');
  const csvBegan = performance.now();
  const r = spawnSync(process.execPath, [cli, 'accounting', '--nodes', NODE, '--since', '2020-01-01', '--format', 'csv'], {
    env: { ...process.env, BERTH_RUN_DIR: berthd.runDir }, encoding: 'utf8', maxBuffer: 1 << 30,
  });
  const csvMs = performance.now() - csvBegan;
  if (r.status !== 0) throw new Error(`berth accounting failed: ${r.stderr}`);
  const rows = r.stdout.split('\n').length - 2;
  console.log(`berth accounting --format csv: ${fmt(rows)} rows, ${fmt(r.stdout.length / MB, 1)} MiB in ${fmt(csvMs)} ms (process start included), ${fmt(rows / (csvMs / 1000))} records/s`);
  const jsonBegan = performance.now();
  const j = spawnSync(process.execPath, [cli, 'accounting', '--nodes', NODE, '--since', '2020-01-01', '--format', 'json', '--user', 'user7'], {
    env: { ...process.env, BERTH_RUN_DIR: berthd.runDir }, encoding: 'utf8', maxBuffer: 1 << 30,
  });
  console.log(`berth accounting --format json --user user7: ${fmt((JSON.parse(j.stdout) as unknown[]).length)} records in ${fmt(performance.now() - jsonBegan)} ms`);
  console.log(`berthd RSS at the end: ${fmt(rssOf(berthd.pid).rss / MB, 1)} MiB (peak ${fmt(rssOf(berthd.pid).peak / MB, 1)} MiB)`);
} finally {
  await berthd.stop();
}
