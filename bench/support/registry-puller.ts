// A plain registry client standing in for one more node in bench/storm.ts: fetches an image's
// manifest by digest and then its config and layers, three blobs at a time (as dockerd does),
// from one registry or mirror, and throws the bytes away. Run as its own process so that many
// of them do not share one event loop:
//   node --import tsx bench/support/registry-puller.ts ADDRESS REPO DIGEST [--verify]
// It prints "ready", starts on a line "go" on stdin, and prints one JSON line {"ms","bytes"}
// when it has every blob, each checked against its size in the manifest (--verify: and against
// its digest, which costs this host a core for it).
import { createHash } from 'node:crypto';
import { createInterface } from 'node:readline';

const [address, repo, digest] = process.argv.slice(2);
const verify = process.argv.includes('--verify');
if (!address || !repo || !digest) {
  console.error('usage: registry-puller.ts ADDRESS REPO DIGEST [--verify]');
  process.exit(2);
}
const base = `http://${address}/v2/${repo}`;

async function blob(d: string, size: number): Promise<number> {
  const res = await fetch(`${base}/blobs/${d}`);
  if (res.status !== 200 || !res.body) throw new Error(`GET ${base}/blobs/${d}: HTTP ${res.status}`);
  const hash = verify ? createHash('sha256') : undefined;
  let bytes = 0;
  for await (const chunk of res.body) {
    bytes += chunk.length;
    hash?.update(chunk);
  }
  if (bytes !== size) throw new Error(`${d}: ${bytes} bytes, the manifest says ${size}`);
  if (hash && `sha256:${hash.digest('hex')}` !== d) throw new Error(`${d}: the bytes served have another digest`);
  return bytes;
}

async function pull(): Promise<number> {
  const res = await fetch(`${base}/manifests/${digest}`, { headers: { accept: 'application/vnd.docker.distribution.manifest.v2+json' } });
  if (res.status !== 200) throw new Error(`GET ${base}/manifests/${digest}: HTTP ${res.status}`);
  const m = (await res.json()) as { config: { digest: string; size: number }; layers: { digest: string; size: number }[] };
  let bytes = await blob(m.config.digest, m.config.size);
  const queue = [...m.layers];
  await Promise.all([0, 1, 2].map(async () => {
    for (let l = queue.shift(); l; l = queue.shift()) bytes += await blob(l.digest, l.size);
  }));
  return bytes;
}

console.log('ready');
const lines = createInterface({ input: process.stdin });
for await (const line of lines) {
  if (line.trim() !== 'go') continue;
  const t0 = performance.now();
  try {
    const bytes = await pull();
    console.log(JSON.stringify({ ms: performance.now() - t0, bytes }));
  } catch (err) {
    console.error(err instanceof Error ? err.message : String(err));
    process.exitCode = 1;
  }
  break;
}
lines.close();
