// berth benchmarks: medians of N runs of berth and the plain Docker CLI, side by side and
// interleaved on the same sandbox node, printed as figures and ratios (no assertions).
//   npm run bench [-- --runs 15]
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { node, sandbox, uidOf } from '../test/support/stack';
import { median, sh } from './support/figures';

const runs = Number(process.argv[process.argv.indexOf('--runs') + 1]) || 12;
const NODE = 'n1';
const n1 = node(NODE);
const image = sandbox().demoImage;
const uid = uidOf('alice');
const docker = ['docker', '-H', `unix://${n1.dockerSocket}`];
const berth = '/usr/local/bin/berth';
// what the SPANK plugin passes the prolog since submit-time pinning: the digest reference
const pinnedImage = spawnSync(berth, ['resolve', image], { encoding: 'utf8' }).stdout.trim();



function hookEnv(jobId: string, withImage: boolean): Record<string, string> {
  const env: Record<string, string> = { PATH: '/usr/bin:/bin', SLURM_JOB_ID: jobId, SLURMD_NODENAME: NODE };
  if (withImage) Object.assign(env, { SLURM_JOB_UID: String(uid), SLURM_JOB_GID: String(uid), SLURM_JOB_USER: 'alice', SLURM_JOB_WORK_DIR: '/home/alice', SPANK_BERTH_CONTAINER_IMAGE: pinnedImage, SPANK_BERTH_CONTAINER_IMAGE_REQUESTED: image });
  return env;
}

const rows: [string, number, number, string][] = [];

// 1. prolog hook with a cached image vs docker run -d of the same container
{
  sh([berth, 'hook', 'prolog'], hookEnv('799999', true)); // warm: pulls the image once
  sh([berth, 'hook', 'epilog'], hookEnv('799999', true));
  const a: number[] = [];
  const b: number[] = [];
  for (let i = 0; i < runs; i++) {
    const id = String(800000 + i);
    a.push(sh([berth, 'hook', 'prolog'], hookEnv(id, true)));
    sh([berth, 'hook', 'epilog'], hookEnv(id, true));
    const name = `berth-bench-run-${i}`;
    b.push(sh([...docker, 'run', '-d', '--name', name, '--network', 'host', '--user', `${uid}:${uid}`, '--cap-drop', 'ALL', '--security-opt', 'no-new-privileges',
      '-v', '/usr/local/lib/berth/berth-init:/.berth/init:ro', '-v', '/home/alice:/home/alice', '--entrypoint', '/.berth/init', image, 'pause']));
    sh([...docker, 'rm', '-f', name]);
  }
  rows.push(['prolog hook, cached image ÷ docker run -d', median(a), median(b), '≤ 1.2']);
}

// 2. berth exec -- true vs docker exec true, in one job container
{
  const id = '800900';
  sh([berth, 'hook', 'prolog'], hookEnv(id, true));
  const container = `berth-${NODE}-job-${id}`;
  const a: number[] = [];
  const b: number[] = [];
  const userEnv = { PATH: '/usr/local/bin:/usr/bin:/bin', SLURM_JOB_ID: id, SLURMD_NODENAME: NODE };
  const envArgs = Object.entries(userEnv).map(([k, v]) => `${k}=${v}`);
  for (let i = 0; i < runs; i++) {
    a.push(sh(['runuser', '-u', 'alice', '--', 'env', ...envArgs, berth, 'exec', '--', 'true']));
    b.push(sh(['runuser', '-u', 'root', '--', ...docker, 'exec', '-u', `${uid}:${uid}`, container, 'true']));
  }
  sh([berth, 'hook', 'epilog'], hookEnv(id, true));
  rows.push(['berth exec -- true ÷ docker exec true', median(a), median(b), '≤ 1.5']);
}

// 3. hook for a job without a container vs node -e 0
{
  const a: number[] = [];
  const b: number[] = [];
  for (let i = 0; i < runs; i++) {
    a.push(sh([berth, 'hook', 'prolog'], hookEnv(String(810000 + i), false)));
    b.push(sh([process.execPath, '-e', '0']));
  }
  rows.push(['hook, job without container ÷ node -e 0', median(a), median(b), '≤ 1.5']);
}

console.log(`berth benchmarks on sandbox node ${NODE}: medians of ${runs} interleaved runs`);
console.log('measure'.padEnd(44), 'berth ms'.padStart(9), 'baseline ms'.padStart(12), 'ratio'.padStart(7), '  goal');
for (const [what, a, b, goal] of rows) {
  console.log(what.padEnd(44), a.toFixed(1).padStart(9), b.toFixed(1).padStart(12), (a / b).toFixed(2).padStart(7), ' ', goal);
}

// 4. idle berthd RSS
const pid = readFileSync(`/run/berth-sandbox/${NODE}/berthd.pid`, 'utf8').trim();
const status = readFileSync(`/proc/${pid}/status`, 'utf8');
const kb = (re: RegExp): number => Number(status.match(re)?.[1] ?? NaN);
const mb = (k: number): string => `${(k / 1024).toFixed(1)} MB`;
const pssKb = Number(readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8').match(/^Pss:\s+(\d+)/m)?.[1] ?? NaN);
console.log(`berthd on ${NODE} at rest after the runs above: RSS ${mb(kb(/VmRSS:\s+(\d+)/))} (goal ≤ 80 MB) = ` +
  `${mb(kb(/RssAnon:\s+(\d+)/))} private + ${mb(kb(/RssFile:\s+(\d+)/))} file-backed (node's own code, shared by every node process); PSS ${mb(pssKb)}`);
