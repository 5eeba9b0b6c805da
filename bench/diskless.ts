// A diskless node's storage (issue 16 item 4, docs/design/diskless.md): `docker pull` of one
// image onto n3 with its data-root on a tmpfs (`scripts/sandbox up --diskless n3`, which this
// bench does, and undoes at the end) against n1 on the machine's disk, interleaved, medians of
// N; and how much of the tmpfs (RAM) the pull took at its peak and once done. The image: random
// layers pushed straight to the registry, removed from the nodes after each pull and from the
// registry at the end. Figures only.
//   npm run bench:diskless [-- --runs 5 --layers 4 --mib 64]
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync, statfsSync } from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { forgetImage, pushRandomLayersImage } from '../test/support/images';
import { node, REPO } from '../test/support/stack';
import { median } from './support/figures';
import { dropFromStorage, STATE_DIR } from './support/registry-storage';

const arg = (name: string, dflt: number): number => Number(process.argv[process.argv.indexOf(`--${name}`) + 1]) || dflt;
const runs = arg('runs', 5);
const layers = arg('layers', 4);
const mib = arg('mib', 64);
const DISKLESS = 'n3';
const DISK = 'n1';
const DATA_ROOT = `${STATE_DIR}/${DISKLESS}/docker`;
const IMAGE_REPO = '127.0.0.1:5000/berth/bench-diskless';
const TAG = `${IMAGE_REPO}:${Date.now()}`;
const MB = 1e6;

function sandboxUp(args: string[]): void {
  const r = spawnSync(path.join(REPO, 'scripts/sandbox'), ['up', '--no-build', ...args], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`scripts/sandbox up ${args.join(' ')} failed: ${r.stdout}${r.stderr}`);
}

const used = (): number => {
  const st = statfsSync(DATA_ROOT);
  return (st.blocks - st.bfree) * st.bsize;
};
const shmem = (): number => Number(/^Shmem:\s+(\d+) kB/m.exec(readFileSync('/proc/meminfo', 'utf8'))![1]) * 1024;

/** docker pull on node n; on the tmpfs node, the tmpfs's use sampled every 10 ms */
async function pull(n: string): Promise<{ ms: number; peak: number; after: number }> {
  const sock = node(n).dockerSocket;
  forgetImage(sock, IMAGE_REPO);
  const sampling = n === DISKLESS;
  const base = sampling ? used() : 0;
  let peak = 0;
  const timer = sampling ? setInterval(() => { peak = Math.max(peak, used() - base); }, 10) : undefined;
  const t0 = performance.now();
  await new Promise<void>((resolve, reject) => {
    const p = spawn('docker', ['-H', `unix://${sock}`, 'pull', '-q', TAG], { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    p.stderr.on('data', (d: Buffer) => { err += d.toString(); });
    p.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`docker pull on ${n} failed (${code}): ${err}`))));
  });
  const ms = performance.now() - t0;
  clearInterval(timer);
  return { ms, peak, after: sampling ? used() - base : 0 };
}

sandboxUp(['--diskless', DISKLESS]);
const pushed = await pushRandomLayersImage(TAG, layers, mib * 2 ** 20);
const onTmpfs: Awaited<ReturnType<typeof pull>>[] = [];
const onDisk: number[] = [];
const shm0 = shmem();
let shmAfter = 0;
try {
  for (let i = 0; i < runs; i++) {
    onTmpfs.push(await pull(DISKLESS));
    shmAfter = shmem() - shm0;
    onDisk.push((await pull(DISK)).ms);
  }
} finally {
  for (const n of [DISKLESS, DISK]) forgetImage(node(n).dockerSocket, IMAGE_REPO);
  dropFromStorage(path.join(STATE_DIR, 'registry/data'), TAG.slice('127.0.0.1:5000/'.length, TAG.lastIndexOf(':')), pushed);
  sandboxUp([]);
}
const t = median(onTmpfs.map((r) => r.ms));
const d = median(onDisk);
console.log(`an image of ${layers} random layers, ${(pushed.bytes / MB).toFixed(0)} MB, medians of ${runs} interleaved: docker pull onto the tmpfs data-root (${DISKLESS}) ${(t / 1000).toFixed(2)} s, `
  + `onto the disk data-root (${DISK}) ${(d / 1000).toFixed(2)} s, ratio ${(t / d).toFixed(3)}`);
console.log(`tmpfs (RAM) taken by one pull: ${(median(onTmpfs.map((r) => r.peak)) / MB).toFixed(0)} MB at its peak, ${(median(onTmpfs.map((r) => r.after)) / MB).toFixed(0)} MB once done; `
  + `the machine's Shmem with the image on the tmpfs: +${(shmAfter / MB).toFixed(0)} MB`);
console.log(`runs (s): tmpfs ${onTmpfs.map((r) => (r.ms / 1000).toFixed(2)).join(' ')}; disk ${onDisk.map((m) => (m / 1000).toFixed(2)).join(' ')}`);
