// A mixed load through the real sandbox, and what it left behind: the soak of issue 2/7.
// Jobs of every kind berth serves (batch jobs with berth exec, native steps in the job's
// container and in step containers, users' docker run, 2-node jobs, arrays, jobs cancelled
// mid-run, time-limit kills) are kept `concurrency` at a time until `jobs` have run; then
// every engine, accounting log and node is read: containers of the soak's jobs left, jobs
// whose accounting record is missing or doubled on a node they ran on, drained nodes, and
// berthd's RSS and open fds (at job 50 and at the end) and the prologues' times from its log.
import { spawnSync } from 'node:child_process';
import { chownSync, mkdirSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import path from 'node:path';
import { expandHostlist } from '../../services/shared/hostlist';
import { node, sandbox, uidOf } from './stack';
import { accountingRecords, run } from './slurm';

export interface SoakOptions {
  jobs: number;
  concurrency: number;
  /** one job in this many is a time-limit kill (a minute at least); 0: none */
  timeLimitEvery?: number;
  log?: (line: string) => void;
}

interface AgentSample {
  rssKiB: number;
  fds: number;
  /** V8's heap in use (berthd's /metrics nodejs_heap_size_used_bytes), KiB; 0 when not scraped */
  heapKiB: number;
}

export interface SoakReport {
  jobsRun: number;
  kinds: Record<string, number>;
  containersLeft: string[];
  recordsMissing: string[];
  recordsDuplicated: string[];
  nodesDrained: string[];
  agents: { at50: Record<string, AgentSample>; atEnd: Record<string, AgentSample>; every100: { job: number; sample: Record<string, AgentSample> }[] };
  prologMillis: { p50: number; p99: number; count: number };
  seconds: number;
}

const PATH = '/usr/local/bin:/usr/bin:/bin';

function kindsFor(image: string, uid: number): { name: string; args: string[]; cancelAfterMs?: number; jobs?: number }[] {
  const docker = `docker run --rm --user ${uid}:${uid} --security-opt no-new-privileges --memory 100m --memory-swap 100m --cpus 1 --network host ${image} true`;
  return [
    { name: 'batch+berth-exec', args: [`--container-image=${image}`, '--wrap', 'srun berth exec -- sh -c "echo hi"'] },
    { name: 'native-in-job-container', args: [`--container-image=${image}`, '--wrap', `srun --container-image=${image} true`] },
    { name: 'step-container', args: ['--wrap', `srun --container-image=${image} true`] },
    { name: 'docker-run', args: [`--container-image=${image}`, '--wrap', docker] },
    { name: '2-node', args: ['-N2', `--container-image=${image}`, '--wrap', 'srun -N2 berth exec -- true'] },
    { name: 'scancel-mid-run', args: [`--container-image=${image}`, '--wrap', 'srun berth exec -- sleep 60'], cancelAfterMs: 3000 },
    { name: 'array', args: ['--array=0-2', `--container-image=${image}`, '--wrap', 'srun berth exec -- true'], jobs: 3 },
  ];
}

function quantile(xs: number[], q: number): number {
  if (xs.length === 0) return 0;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))]!;
}

function berthdPid(nodeName: string): number | undefined {
  try {
    return Number(readFileSync(`/run/berth-sandbox/${nodeName}/berthd.pid`, 'utf8').trim()) || undefined;
  } catch {
    return undefined;
  }
}

function sampleAgents(): Record<string, AgentSample> {
  const out: Record<string, AgentSample> = {};
  for (const n of sandbox().nodes) {
    const pid = berthdPid(n.name);
    if (!pid) continue;
    try {
      const rss = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
      out[n.name] = {
        rssKiB: Number(rss ?? 0),
        fds: readdirSync(`/proc/${pid}/fd`).filter((f) => { try { readlinkSync(`/proc/${pid}/fd/${f}`); return true; } catch { return false; } }).length,
        heapKiB: heapUsedKiB(node(n.name).metricsAddress),
      };
    } catch {
      // berthd restarting
    }
  }
  return out;
}

/** berthd's V8 heap in use, from its /metrics (curl: the soak's loop is synchronous here) */
function heapUsedKiB(address: string): number {
  const r = spawnSync('curl', ['-s', '--max-time', '5', `http://${address}/metrics`], { encoding: 'utf8' });
  const line = (r.stdout ?? '').split('\n').find((l) => l.startsWith('nodejs_heap_size_used_bytes'));
  return line ? Math.round(Number(line.slice(line.lastIndexOf(' ') + 1)) / 1024) : 0;
}

/** the numeric job ids an array's tasks were given (sacct shows 42_0; JobIDRaw is the number) */
function rawIds(jobId: string): string[] {
  return run('sacct', ['-n', '-X', '-P', '-j', jobId, '-o', 'JobIDRaw']).stdout.trim().split('\n').filter(Boolean);
}

export async function runSoak(o: SoakOptions): Promise<SoakReport> {
  const say = o.log ?? (() => undefined);
  const began = Date.now();
  const image = sandbox().demoImage;
  const user = 'alice';
  const uid = uidOf(user);
  const dir = path.join('/home', user, 'berth-soak', String(began));
  mkdirSync(dir, { recursive: true });
  chownSync(path.dirname(dir), uid, uid);
  chownSync(dir, uid, uid);
  const kinds = kindsFor(image, uid);
  const logOffsets = Object.fromEntries(sandbox().nodes.map((n) => [n.name, safeSize(n.logs.berthd!)]));
  const submitted: { id: string; kind: string; count: number }[] = [];
  const inFlight = new Set<string>();
  const counts: Record<string, number> = {};
  let jobsRun = 0;
  let at50: Record<string, AgentSample> = {};
  const every100: { job: number; sample: Record<string, AgentSample> }[] = [];
  let k = 0;
  while (jobsRun < o.jobs || inFlight.size > 0) {
    // one squeue for all: an array's tasks share its first id (%F)
    const queued = new Set(run('squeue', ['-h', '-u', user, '-o', '%F']).stdout.split('\n').map((l) => l.trim()).filter(Boolean));
    for (const id of [...inFlight]) if (!queued.has(id)) inFlight.delete(id);
    while (jobsRun < o.jobs && inFlight.size < o.concurrency) {
      let kind = kinds[k++ % kinds.length]!;
      if (o.timeLimitEvery && k % o.timeLimitEvery === 0) kind = { name: 'time-limit', args: ['-t', '1', `--container-image=${image}`, '--wrap', 'srun berth exec -- sleep 600'] };
      const sub = run('sbatch', ['-o', '/dev/null', '-e', '/dev/null', '--no-container-batch', ...kind.args], { user, cwd: dir, env: { PATH } });
      const id = /Submitted batch job (\d+)/.exec(sub.stdout)?.[1];
      if (!id) throw new Error(`sbatch of a ${kind.name} job failed: ${sub.stderr}`);
      const count = kind.jobs ?? 1;
      submitted.push({ id, kind: kind.name, count });
      inFlight.add(id);
      counts[kind.name] = (counts[kind.name] ?? 0) + count;
      if (kind.cancelAfterMs) {
        const t = setTimeout(() => void run('scancel', [id]), kind.cancelAfterMs);
        t.unref();
      }
      const before = jobsRun;
      jobsRun += count;
      if (before < 50 && jobsRun >= 50) at50 = sampleAgents();
      if (Math.floor(before / 100) < Math.floor(jobsRun / 100)) every100.push({ job: jobsRun, sample: sampleAgents() });
      if (jobsRun % 25 < count) say(`soak: ${jobsRun} jobs submitted, ${inFlight.size} in flight`);
    }
    await new Promise((r) => setTimeout(r, 500));
  }
  // the cancelled jobs' timers may still be pending: they only cancel ended jobs now
  const kindOf = new Map<string, string>();
  for (const s of submitted) for (const id of s.count > 1 ? rawIds(s.id) : [s.id]) kindOf.set(id, s.kind);
  const allIds = [...kindOf.keys()];
  // epilogues end just after Slurm forgets the job: wait a moment for the last ones
  const settle = Date.now() + 60_000;
  let containersLeft: string[] = [];
  for (;;) {
    containersLeft = [];
    for (const n of sandbox().nodes) {
      const ps = run('docker', ['-H', `unix://${node(n.name).dockerSocket}`, 'ps', '-a', '--format', '{{.Label "io.berth.job.id"}} {{.ID}}']).stdout.trim().split('\n').filter(Boolean);
      for (const line of ps) {
        const [job, id] = line.split(' ');
        if (job && allIds.includes(job)) containersLeft.push(`${n.name}:${job}:${id}`);
      }
    }
    if (containersLeft.length === 0 || Date.now() > settle) break;
    await new Promise((r) => setTimeout(r, 1000));
  }
  // accounting: a job record per node the job ran on (it had an allocation), exactly once
  const records = new Map<string, number>();
  for (const n of sandbox().nodes) {
    for (const r of accountingRecords(n.name)) {
      if (r.StepID !== undefined && r.StepID !== '' && r.StepID !== null) continue;
      const key = `${n.name}:${String(r.JobID)}`;
      records.set(key, (records.get(key) ?? 0) + 1);
    }
  }
  const recordsMissing: string[] = [];
  const recordsDuplicated: string[] = [];
  for (const id of allIds) {
    // an array's first id names the whole array to sacct: take the row of this very job
    const row = run('sacct', ['-n', '-X', '-P', '-j', id, '-o', 'JobIDRaw,NodeList,State,Start']).stdout.trim().split('\n').map((l) => l.split('|')).find((r) => r[0] === id) ?? [];
    const [, list, state, start] = row;
    // a job that never started (cancelled while pending) has no container and no record
    if (!list || list === 'None assigned' || start === 'Unknown' || /PENDING/.test(state ?? '')) continue;
    // a plain allocation whose steps ran in step containers has no job container, hence no job record
    const usesContainer = kindOf.get(id) !== 'step-container';
    for (const n of expandHostlist(list)) {
      const c = records.get(`${n}:${id}`) ?? 0;
      if (c === 0 && usesContainer) recordsMissing.push(`${n}:${id}`);
      if (c > 1) recordsDuplicated.push(`${n}:${id}×${c}`);
    }
  }
  const nodesDrained = run('sinfo', ['-h', '-N', '-o', '%N %T']).stdout.trim().split('\n').filter((l) => /drain/.test(l)).map((l) => l.split(' ')[0]!);
  const prologs: number[] = [];
  for (const n of sandbox().nodes) {
    const text = readFileSync(n.logs.berthd!, 'utf8').slice(logOffsets[n.name]);
    for (const line of text.split('\n')) {
      if (!line.includes('"job container started"')) continue;
      try {
        const m = (JSON.parse(line) as { millis?: number }).millis;
        if (typeof m === 'number') prologs.push(m);
      } catch {
        // a line cut at the read
      }
    }
  }
  return {
    jobsRun, kinds: counts, containersLeft, recordsMissing, recordsDuplicated, nodesDrained,
    agents: { at50, atEnd: sampleAgents(), every100 },
    prologMillis: { p50: quantile(prologs, 0.5), p99: quantile(prologs, 0.99), count: prologs.length },
    seconds: (Date.now() - began) / 1000,
  };
}

function safeSize(file: string): number {
  const r = spawnSync('stat', ['-c', '%s', file], { encoding: 'utf8' });
  return Number(r.stdout.trim()) || 0;
}
