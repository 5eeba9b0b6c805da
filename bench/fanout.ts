// `berth status --nodes ...` fan-out over N real berthd processes of the benchmark's own
// (fa1..faN: own node names, run and state directories under /tmp, no authz) against one
// dockerd (sandbox n1's, or BERTH_TEST_DOCKER_SOCKET), ÷ the same over one agent. Two
// figures per N, medians of R runs: the whole CLI (`node dist/berth.js status`, start-up
// included) and the fan-out alone in this process (askNodes, connections included).
//   npm run build && npm run bench:fanout [-- --max 64 --runs 10]
import { execFileSync } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import { statusCommand } from '../services/cli/fleet-commands';
import { askNodes } from '../services/cli/fleet-run';
import { BERTH, startOwnAgents } from '../test/support/own-agents';

const arg = (name: string, dflt: number): number => {
  const i = process.argv.indexOf(name);
  return i >= 0 ? Number(process.argv[i + 1]) || dflt : dflt;
};
const max = arg('--max', 64);
const runs = arg('--runs', 10);
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const sizes = [...new Set([1, 3, Math.min(16, max), max])].filter((n) => n <= max).sort((a, b) => a - b);

const began = performance.now();
const agents = await startOwnAgents(Array.from({ length: max }, (_, i) => `fa${i + 1}`));
console.log(`started ${max} berthd in ${((performance.now() - began) / 1000).toFixed(1)} s (dockerd shared)`);
const env = { ...process.env, BERTH_RUN_DIR: agents.runDir };
try {
  const rows: { n: number; cli: number; fan: number }[] = [];
  for (const n of sizes) {
    const hostlist = n === 1 ? 'fa1' : `fa[1-${n}]`;
    const cli: number[] = [];
    const fan: number[] = [];
    for (let r = 0; r < runs; r++) {
      const t0 = performance.now();
      const out = execFileSync(process.execPath, [BERTH, 'status', '--nodes', hostlist, '--json'], { env, encoding: 'utf8' });
      cli.push(performance.now() - t0);
      const doc = JSON.parse(out) as { answered: number };
      if (doc.answered !== n) throw new Error(`berth status --nodes ${hostlist}: ${doc.answered} of ${n} answered`);
      const t1 = performance.now();
      const outcomes = await askNodes(statusCommand, Array.from({ length: n }, (_, i) => `fa${i + 1}`), { conn: { tls: {}, env: { BERTH_RUN_DIR: agents.runDir } } });
      fan.push(performance.now() - t1);
      if (outcomes.some((o) => !o.ok)) throw new Error(`fan-out over ${n}: ${outcomes.filter((o) => !o.ok).map((o) => o.node).join(', ')} did not answer`);
    }
    rows.push({ n, cli: median(cli), fan: median(fan) });
  }
  const one = rows[0]!;
  console.log(`\nberth status fan-out, medians of ${runs} runs (2 cores; every agent on this machine and one dockerd)`);
  console.log('nodes  cli ms  ÷1 node  fan-out ms  ÷1 node  per node ms');
  for (const r of rows) {
    console.log(`${String(r.n).padStart(5)}  ${r.cli.toFixed(0).padStart(6)}  ${(r.cli / one.cli).toFixed(2).padStart(7)}  ${r.fan.toFixed(1).padStart(10)}  ${(r.fan / one.fan).toFixed(2).padStart(7)}  ${(r.fan / r.n).toFixed(2).padStart(11)}`);
  }
} finally {
  await agents.stop();
}
