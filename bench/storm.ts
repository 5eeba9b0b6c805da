// The start storm (issue 16): N pullers starting one uncached multi-layer image at the same
// moment, as the nodes of a job do, through the coalescing mirror tier (nginx proxy_cache,
// 127.0.0.1:5004), then through the distribution registry in proxy mode (5001) and straight
// from the origin (5000) for comparison, each with a fresh image of its own. Pullers: the three
// sandbox dockerds (`docker pull`) plus plain registry clients (bench/support/registry-puller.ts)
// standing in for more nodes. Prints, per path: origin GETs of each blob (from the origin
// registry's access log) and the time until all N have the image ÷ one `docker pull` of such an
// image straight from the origin on an idle node. A dockerd whose data-root has no room for the
// image (the sandbox's n3 keeps a 256 MiB disk for the disk-full drill) is left out and one more
// registry client takes its place.
//   npm run bench:storm [-- --mb 1024 --layers 8 --pullers 16]
// Everything it adds is removed again: the images on the nodes, its repositories in the origin's
// and the proxy mirror's storage, its entries in the tier's cache.
import { execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, rmSync, statfsSync, statSync } from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import { blobGets, forgetImage, type PushedLayers, pushRandomLayersImage } from '../test/support/images';
import { node, REPO, sandbox } from '../test/support/stack';
import { dropFromStorage, STATE_DIR } from './support/registry-storage';

const arg = (name: string, dflt: number): number => Number(process.argv[process.argv.indexOf(`--${name}`) + 1]) || dflt;
const megabytes = arg('mb', 1024);
const layers = arg('layers', 8);
const pullers = arg('pullers', 16);
const sb = sandbox();
const origin = sb.registry.address;
const stamp = Date.now();
const bytesPerLayer = Math.floor((megabytes << 20) / layers);
const freeBytes = (dir: string): number => {
  const f = statfsSync(dir);
  return f.bavail * f.bsize;
};
/** the sandbox dockerds with room for the image (and as much again for the download) */
const NODES = sb.nodes.map((n) => n.name).filter((n) => {
  const root = execFileSync('docker', ['-H', `unix://${node(n).dockerSocket}`, 'info', '--format', '{{.DockerRootDir}}'], { encoding: 'utf8' }).trim();
  const room = freeBytes(root) > (megabytes << 20) * 2.2;
  if (!room) console.error(`bench:storm: ${n}'s data-root ${root} has ${(freeBytes(root) / 2 ** 20).toFixed(0)} MiB free: a registry client pulls in its place`);
  return room;
});
if (!NODES.length) {
  console.error('bench:storm: no sandbox dockerd has room for the image (pass --mb for a smaller one)');
  process.exit(1);
}
const clients = Math.max(1, pullers - NODES.length);

// the origin keeps three copies, the proxy mirror and the tier one each, every node one at a time
const need = (megabytes << 20) * 8 + (5 << 30);
const free = freeBytes('/var/lib');
if (free < need) {
  console.error(`bench:storm: /var/lib has ${(free / 2 ** 30).toFixed(1)} GiB free; a ${megabytes} MB image needs ${(need / 2 ** 30).toFixed(1)} GiB (pass --mb for a smaller one)`);
  process.exit(1);
}

const docker = (n: string, ...args: string[]): Promise<number> => new Promise((resolve, reject) => {
  const t0 = performance.now();
  const p = spawn('docker', ['-H', `unix://${node(n).dockerSocket}`, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  p.stderr.on('data', (d: Buffer) => { err += d.toString(); });
  p.on('error', reject);
  p.on('close', (code) => (code === 0 ? resolve(performance.now() - t0) : reject(new Error(`docker ${args.join(' ')} on ${n}: ${err.trim()}`))));
});

interface Puller { ready: Promise<void>; go(): Promise<number> }

/** a registry client process, started now, pulling when go() is called; go() resolves to its ms */
function registryPuller(address: string, repo: string, digest: string, verify: boolean): Puller {
  const p = spawn(process.execPath, ['--import', 'tsx', path.join(REPO, 'bench/support/registry-puller.ts'), address, repo, digest, ...(verify ? ['--verify'] : [])],
    { cwd: REPO, stdio: ['pipe', 'pipe', 'pipe'] });
  let err = '';
  p.stderr.on('data', (d: Buffer) => { err += d.toString(); });
  const lines = createInterface({ input: p.stdout });
  const next = (): Promise<string> => new Promise((resolve, reject) => {
    lines.once('line', resolve);
    p.once('close', (code) => reject(new Error(`registry puller ended (${code}): ${err.trim()}`)));
  });
  const ready = next().then(() => undefined);
  return {
    ready,
    async go() {
      const done = next();
      p.stdin.end('go\n');
      return (JSON.parse(await done) as { ms: number }).ms;
    },
  };
}

interface Storm { via: string; wallMs: number; dockerMs: number[]; clientMs: number[]; originGets: number[]; originBytes: number }

/** every puller at once through `via` (an address that serves the image's repository) */
async function storm(via: string, image: PushedLayers, repo: string): Promise<Storm> {
  const procs = Array.from({ length: clients }, (_, i) => registryPuller(via, repo, image.manifestDigest, i === 0));
  await Promise.all(procs.map((p) => p.ready));
  const log = sb.registry.log;
  const from = statSync(log).size;
  const t0 = performance.now();
  const [dockerMs, clientMs] = await Promise.all([
    Promise.all(NODES.map((n) => docker(n, 'pull', '-q', `${via}/${repo}@${image.manifestDigest}`))),
    Promise.all(procs.map((p) => p.go())),
  ]);
  const wallMs = performance.now() - t0;
  await new Promise((r) => setTimeout(r, 500));
  const gets = blobGets(log, from, repo);
  const result: Storm = {
    via, wallMs, dockerMs, clientMs,
    originGets: image.blobs.map((b) => gets.get(b)?.[0] ?? 0),
    originBytes: [...gets.values()].reduce((a, [, b]) => a + b, 0),
  };
  for (const n of NODES) forgetImage(node(n).dockerSocket, `*/${repo}`);
  return result;
}

/** removes the tier's cache files of an image (nginx's key is the path; levels=1:2) */
function dropFromTier(repo: string, image: PushedLayers): void {
  const uris = [...image.blobs.map((b) => `/v2/${repo}/blobs/${b}`), `/v2/${repo}/manifests/${image.manifestDigest}`];
  for (const uri of uris) {
    const md5 = createHash('md5').update(uri).digest('hex');
    rmSync(path.join(sb.mirrorTier.cache, md5.slice(-1), md5.slice(-3, -1), md5), { force: true });
  }
}

const pushed: { repo: string; image: PushedLayers }[] = [];
async function fresh(name: string): Promise<{ repo: string; image: PushedLayers }> {
  const repo = `berth/storm-${stamp}-${name}`;
  const t0 = performance.now();
  const image = await pushRandomLayersImage(`${origin}/${repo}:1`, layers, bytesPerLayer);
  console.error(`bench:storm: pushed ${repo} (${image.blobs.length - 1} layers, ${(image.bytes / 2 ** 20).toFixed(0)} MiB) in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  pushed.push({ repo, image });
  return { repo, image };
}

const results: Storm[] = [];
let idleMs = 0;
try {
  // one docker pull on an idle node, straight from the origin: the yardstick
  const idle = await fresh('idle');
  idleMs = await docker(NODES[0]!, 'pull', '-q', `${origin}/${idle.repo}@${idle.image.manifestDigest}`);
  forgetImage(node(NODES[0]!).dockerSocket, `*/${idle.repo}`);
  for (const via of [sb.mirrorTier.address, sb.mirror.address, origin]) {
    const { repo, image } = await fresh(via.split(':').pop()!);
    console.error(`bench:storm: ${NODES.length + clients} pullers at once through ${via}`);
    results.push(await storm(via, image, repo));
  }
} finally {
  for (const { repo, image } of pushed) {
    for (const { name: n } of sb.nodes) forgetImage(node(n).dockerSocket, `*/${repo}`);
    dropFromStorage(path.join(STATE_DIR, 'registry/data'), repo, image);
    if (existsSync(path.join(STATE_DIR, 'mirror/data'))) dropFromStorage(path.join(STATE_DIR, 'mirror/data'), repo, image);
    dropFromTier(repo, image);
  }
}

const s = (ms: number): string => `${(ms / 1000).toFixed(1)} s`;
const name: Record<string, string> = {
  [sb.mirrorTier.address]: 'nginx tier (proxy_cache_lock)',
  [sb.mirror.address]: 'distribution proxy mirror',
  [origin]: 'origin, no mirror',
};
const image = pushed[0]!.image;
console.log(`start storm: ${NODES.length} dockerds + ${clients} registry clients = ${NODES.length + clients} pullers, one uncached image of ${layers} random layers, ${(image.bytes / 2 ** 20).toFixed(0)} MiB`);
console.log(`one docker pull on an idle node (from the origin): ${s(idleMs)}`);
// the same storm straight from the origin: what this host's shared CPUs and disk cost N pullers
// without any waiting on a mirror
const direct = results.find((r) => r.via === origin)!;
console.log('| path | origin GETs per blob (config, layers) | origin egress | all have it | ÷ one pull | ÷ the storm from the origin | docker pulls (slowest) | clients (slowest) |');
console.log('| --- | --- | --- | --- | --- | --- | --- | --- |');
for (const r of results) {
  console.log(`| ${name[r.via]} (${r.via}) | ${r.originGets.join(' ')} | ${(r.originBytes / image.bytes).toFixed(1)} × the image | ${s(r.wallMs)} | ${(r.wallMs / idleMs).toFixed(2)} | ${(r.wallMs / direct.wallMs).toFixed(2)} | ${s(Math.max(...r.dockerMs))} | ${s(Math.max(...r.clientMs))} |`);
}
console.log(`(one host with ${readFileSync('/proc/cpuinfo', 'utf8').match(/^processor/gm)?.length ?? '?'} CPUs runs all ${NODES.length + clients} pullers, the registries and the tier: "÷ one pull" includes their contention, "÷ the storm from the origin" leaves it out)`);
