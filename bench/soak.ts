// The soak of issue 2/7: npm run soak -- --jobs 500 --concurrency 16 [--time-limit-every 40]
// A mixed load across the sandbox's three nodes; prints what it left behind (test/support/soak.ts).
import { runSoak } from '../test/support/soak';

const arg = (name: string, dflt: number): number => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : dflt;
};

const report = await runSoak({
  jobs: arg('jobs', 60), concurrency: arg('concurrency', 16), timeLimitEvery: arg('time-limit-every', 40),
  log: (l) => process.stderr.write(`${l}\n`),
});
const agents = (s: Record<string, { rssKiB: number; fds: number; heapKiB: number }>) => Object.entries(s)
  .map(([n, a]) => `${n} ${(a.rssKiB / 1024).toFixed(1)} MiB ${a.fds} fds (heap ${(a.heapKiB / 1024).toFixed(1)} MiB)`).join(', ');
console.log(`jobs run: ${report.jobsRun} in ${report.seconds.toFixed(0)} s (${Object.entries(report.kinds).map(([k, v]) => `${k} ${v}`).join(', ')})`);
console.log(`containers left: ${report.containersLeft.length}${report.containersLeft.length ? ` (${report.containersLeft.join(', ')})` : ''}`);
console.log(`accounting records missing: ${report.recordsMissing.length}${report.recordsMissing.length ? ` (${report.recordsMissing.join(', ')})` : ''}, duplicated: ${report.recordsDuplicated.length}${report.recordsDuplicated.length ? ` (${report.recordsDuplicated.join(', ')})` : ''}`);
console.log(`nodes drained: ${report.nodesDrained.length}${report.nodesDrained.length ? ` (${report.nodesDrained.join(', ')})` : ''}`);
console.log(`berthd at job 50: ${agents(report.agents.at50)}`);
for (const s of report.agents.every100) console.log(`berthd at job ${s.job}: ${agents(s.sample)}`);
console.log(`berthd at the end: ${agents(report.agents.atEnd)}`);
console.log(`prolog (job container made) p50 ${report.prologMillis.p50} ms, p99 ${report.prologMillis.p99} ms over ${report.prologMillis.count}`);
