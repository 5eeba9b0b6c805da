// A big image on one node (issue 16 item 3): `berth pull IMAGE --nodes n1` (berthd's pull:
// digest resolution, the single-flight pull, the verify) against `docker pull` of the same
// image on n1's dockerd, interleaved, medians of N. The image: 8 layers of random bytes, 1 GiB
// in all, pushed straight to the registry so that no engine has it. Removed from n1 after each
// pull, and from the registry's storage at the end. Figures only.
//   npm run bench:big-pull [-- --runs 5 --layers 8 --mib 128]
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { forgetImage, pushRandomLayersImage } from '../test/support/images';
import { node } from '../test/support/stack';
import { dropFromStorage, STATE_DIR } from './support/registry-storage';
import { median } from './support/figures';

const arg = (name: string, dflt: number): number => Number(process.argv[process.argv.indexOf(`--${name}`) + 1]) || dflt;
const runs = arg('runs', 5);
const layers = arg('layers', 8);
const mib = arg('mib', 128);
const NODE = 'n1';
const sock = node(NODE).dockerSocket;
const REPO = '127.0.0.1:5000/berth/bench-big-pull';
const TAG = `${REPO}:${Date.now()}`;

const pushed = await pushRandomLayersImage(TAG, layers, mib * 2 ** 20);
const timed = (argv: string[]): number => {
  forgetImage(sock, REPO);
  const t0 = performance.now();
  const r = spawnSync(argv[0]!, argv.slice(1), { encoding: 'utf8' });
  const ms = performance.now() - t0;
  if (r.status !== 0) throw new Error(`${argv.join(' ')} failed (${r.status}): ${r.stderr}${r.stdout}`);
  return ms;
};
const berth: number[] = [];
const docker: number[] = [];
try {
  for (let i = 0; i < runs; i++) {
    berth.push(timed(['/usr/local/bin/berth', 'pull', TAG, '--nodes', NODE]));
    docker.push(timed(['docker', '-H', `unix://${sock}`, 'pull', '-q', TAG]));
  }
} finally {
  forgetImage(sock, REPO);
  dropFromStorage(path.join(STATE_DIR, 'registry/data'), TAG.slice('127.0.0.1:5000/'.length, TAG.lastIndexOf(':')), pushed);
}
const gib = pushed.bytes / 2 ** 30;
console.log(`a ${gib.toFixed(2)} GiB image of ${layers} random layers on ${NODE}, medians of ${runs} interleaved: berth pull ${(median(berth) / 1000).toFixed(2)} s, ` +
  `docker pull ${(median(docker) / 1000).toFixed(2)} s, ratio ${(median(berth) / median(docker)).toFixed(3)} (goal ≤ 1.05)`);
console.log(`runs (s): berth ${berth.map((m) => (m / 1000).toFixed(2)).join(' ')}; docker ${docker.map((m) => (m / 1000).toFixed(2)).join(' ')}`);
