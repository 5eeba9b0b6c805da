// Image delivery benchmarks (issue #4), on sandbox node n1 and its registry, side by side
// with the Docker CLI: berth's pre-pull (resolve + single-flight pull) ÷ one `docker pull`;
// 16 concurrent prologue pulls of an uncached multi-layer image ÷ one pull, and blob fetches
// per blob from the registry's access log.   npm run bench:images [-- --runs N]
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { DockerodeEngine } from '../services/agent/docker/dockerode-engine';
import { ImageService } from '../services/agent/images/image-service';
import { silentLogger } from '../services/agent/logger';
import { RegistryClient } from '../services/shared/images/registry-client';
import { pushAsSite } from '../test/support/images';
import { node, sandbox } from '../test/support/stack';

const runs = Number(process.argv[process.argv.indexOf('--runs') + 1]) || 10;
const sock = node('n1').dockerSocket;
const docker = (...args: string[]): string => execFileSync('docker', ['-H', `unix://${sock}`, ...args], { encoding: 'utf8' }).trim();
const engine = new DockerodeEngine(sock);
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

// a 4-layer image: the demo image plus three layers of 2 MB of random data each
const IMAGE = '127.0.0.1:5000/berth/bench-layers:1';
{
  let base = sandbox().demoImage;
  docker('pull', '-q', base);
  for (let i = 0; i < 3; i++) {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'berth-layer-'));
    writeFileSync(path.join(dir, `layer${i}.bin`), Buffer.from(Array.from({ length: 2 << 20 }, () => Math.floor(Math.random() * 256))));
    const c = docker('create', '--network', 'none', base, 'true');
    docker('cp', path.join(dir, `layer${i}.bin`), `${c}:/layer${i}.bin`);
    docker('commit', c, `${IMAGE}-step${i}`);
    docker('rm', c);
    base = `${IMAGE}-step${i}`;
  }
  docker('tag', base, IMAGE);
  pushAsSite(sock, IMAGE);
  for (let i = 0; i < 3; i++) docker('rmi', `${IMAGE}-step${i}`);
}

const removeLocal = (): void => {
  const ids = new Set(docker('images', '-q', '--no-trunc', '--filter', 'reference=127.0.0.1:5000/berth/bench-layers').split('\n').filter(Boolean));
  for (const id of ids) spawnSync('docker', ['-H', `unix://${sock}`, 'rmi', '-f', id], { stdio: 'ignore' });
};

const service = () => new ImageService(engine, new RegistryClient(), { timeoutMs: 120_000, inactivityMs: 60_000 }, silentLogger());

// 1. pre-pull vs docker pull
const berthPull: number[] = [];
const dockerPull: number[] = [];
for (let i = 0; i < runs; i++) {
  removeLocal();
  let t0 = performance.now();
  await service().ensure(IMAGE);
  berthPull.push(performance.now() - t0);
  removeLocal();
  t0 = performance.now();
  docker('pull', '-q', IMAGE);
  dockerPull.push(performance.now() - t0);
}
console.log(`pre-pull of a 4-layer image (resolve + pull + verify) ÷ docker pull, medians of ${runs}: ${median(berthPull).toFixed(1)} / ${median(dockerPull).toFixed(1)} ms = ${(median(berthPull) / median(dockerPull)).toFixed(2)} (goal ≤ 1.1)`);

// 2. 16 concurrent prologue pulls vs one pull, and blob fetches
const log = sandbox().registry.log;
const together: number[] = [];
let fetchesPerBlob = 0;
for (let i = 0; i < Math.max(3, Math.floor(runs / 2)); i++) {
  removeLocal();
  const start = statSync(log).size;
  const s = service();
  const t0 = performance.now();
  await Promise.all(Array.from({ length: 16 }, () => s.ensure(IMAGE)));
  together.push(performance.now() - t0);
  await new Promise((r) => setTimeout(r, 300));
  const gets = [...readFileSync(log).subarray(start).toString().matchAll(/"GET \/v2\/berth\/bench-layers\/blobs\/(sha256:[a-f0-9]{64}) HTTP/g)].map((m) => m[1]);
  fetchesPerBlob = Math.max(fetchesPerBlob, gets.length / new Set(gets).size);
}
console.log(`16 concurrent prologue pulls of that uncached image ÷ one pull: ${median(together).toFixed(1)} / ${median(dockerPull).toFixed(1)} ms = ${(median(together) / median(dockerPull)).toFixed(2)} (goal ≤ 1.2); blob fetches per blob: ${fetchesPerBlob.toFixed(2)} (goal 1)`);
removeLocal();
