// Small images for the tests, made from the host's static busybox and pushed to the sandbox
// registry through node n1's dockerd (and removed from it again); images of random layers pushed
// straight to the registry's API; blob fetches counted from a registry's access log.
import { execFileSync } from 'node:child_process';
import { createHash, randomFillSync } from 'node:crypto';
import { closeSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { constants as zlibConstants, gzipSync } from 'node:zlib';
import { node, registryPushLogin, sandbox } from './stack';

/**
 * pushes the local image TAG (named after the registry's pull address, 127.0.0.1:5000/...) as
 * the site does: through the push address with the site login, from a config dir of its own.
 * TAG itself then pulls anonymously (same repository, same digest).
 */
export function pushAsSite(dockerSocket: string, tag: string): void {
  const { address, pushAddress } = sandbox().registry;
  if (!tag.startsWith(`${address}/`)) throw new Error(`pushAsSite: ${tag} is not an image of the sandbox registry ${address}`);
  const pushTag = pushAddress + tag.slice(address.length);
  const config = mkdtempSync(path.join(os.tmpdir(), 'berth-push-login-'));
  const docker = (...args: string[]): void => void execFileSync('docker', ['--config', config, '-H', `unix://${dockerSocket}`, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  try {
    writeFileSync(path.join(config, 'config.json'), JSON.stringify({ auths: { [pushAddress]: { auth: Buffer.from(`site:${registryPushLogin()}`).toString('base64') } } }), { mode: 0o600 });
    docker('tag', tag, pushTag);
    try {
      docker('push', '-q', pushTag);
    } finally {
      docker('rmi', pushTag);
    }
  } finally {
    rmSync(config, { recursive: true, force: true });
  }
}

const APPLETS = ['sh', 'cat', 'sleep', 'touch', 'ls', 'id', 'test', 'echo', 'grep', 'cut', 'pwd', 'kill', 'true', 'false'];

/**
 * pushes TAG as a busybox image (as /bin/sh and friends, /tmp 1777) to which `fill` adds its
 * files in the image's root directory; imported on n1's engine, pushed, and removed there again
 */
function pushBusyboxRoot(tag: string, fill: (root: string) => void): void {
  const sock = node('n1').dockerSocket;
  const root = mkdtempSync(path.join(os.tmpdir(), 'berth-image-'));
  try {
    for (const d of ['bin', 'etc', 'tmp']) mkdirSync(path.join(root, d), { mode: 0o755 });
    execFileSync('chmod', ['1777', path.join(root, 'tmp')]);
    execFileSync('cp', ['/bin/busybox', path.join(root, 'bin/busybox')]);
    for (const a of APPLETS) execFileSync('ln', ['-s', 'busybox', path.join(root, 'bin', a)]);
    fill(root);
    execFileSync('sh', ['-c', `tar -C ${root} -c . | docker -H unix://${sock} import - ${tag} >/dev/null`]);
    pushAsSite(sock, tag);
    execFileSync('docker', ['-H', `unix://${sock}`, 'rmi', tag], { stdio: 'ignore' });
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

/** pushes TAG holding busybox (as /bin/sh and friends) and `files` (path → content) */
export function pushBusyboxImage(tag: string, files: Record<string, string>): void {
  pushBusyboxRoot(tag, (root) => {
    for (const [f, text] of Object.entries(files)) {
      mkdirSync(path.dirname(path.join(root, f)), { recursive: true });
      writeFileSync(path.join(root, f), text);
    }
  });
}

/**
 * pushes TAG as a busybox image carrying `megabytes` of random (incompressible) data in
 * /pad, unless the registry has TAG already: big enough that a node's pull of it takes a
 * while (a fault drill kills berthd mid-pull). Returns the image's digest reference.
 */
export async function pushPaddedImage(tag: string, megabytes: number): Promise<string> {
  const existing = await registryDigest(tag);
  if (existing) return existing;
  pushBusyboxRoot(tag, (root) => {
    writeFileSync(path.join(root, 'etc/padded-release'), `padded ${megabytes} MB\n`);
    const pad = openSync(path.join(root, 'pad'), 'w');
    try {
      execFileSync('head', ['-c', String(megabytes * 1024 * 1024), '/dev/urandom'], { stdio: ['ignore', pad, 'inherit'] });
    } finally {
      closeSync(pad);
    }
  });
  const digest = await registryDigest(tag);
  if (!digest) throw new Error(`pushed ${tag}, but the registry does not list it`);
  return digest;
}

/** REPO@sha256:... of TAG in the sandbox registry, or undefined when it has no such tag */
export async function registryDigest(tag: string): Promise<string | undefined> {
  const { address } = sandbox().registry;
  const rest = tag.slice(address.length + 1);
  const [repo, ref] = [rest.slice(0, rest.lastIndexOf(':')), rest.slice(rest.lastIndexOf(':') + 1)];
  const res = await fetch(`http://${address}/v2/${repo}/manifests/${ref}`, {
    method: 'HEAD', headers: { Accept: 'application/vnd.docker.distribution.manifest.v2+json' },
  });
  const digest = res.headers.get('docker-content-digest');
  return res.ok && digest ? `${address}/${repo}@${digest}` : undefined;
}

/** removes every image of REPO (any tag or digest) from a node's dockerd, so that the next job pulls it */
export function forgetImage(dockerSocket: string, repo: string): void {
  const ids = execFileSync('docker', ['-H', `unix://${dockerSocket}`, 'images', '-q', '--no-trunc', '--filter', `reference=${repo}`], { encoding: 'utf8' }).split('\n').filter(Boolean);
  const digests = execFileSync('docker', ['-H', `unix://${dockerSocket}`, 'images', '--digests', '--format', '{{.Repository}}@{{.Digest}}', repo], { encoding: 'utf8' }).split('\n').filter((l) => l.includes('@sha256:'));
  for (const ref of [...new Set([...digests, ...ids])]) execFileSync('docker', ['-H', `unix://${dockerSocket}`, 'rmi', '-f', ref], { stdio: 'ignore' });
}

export interface PushedLayers {
  /** REPO@sha256:... of the manifest, named after the registry's pull address */
  digestRef: string;
  manifestDigest: string;
  /** the config blob's digest, then each layer's, in manifest order */
  blobs: string[];
  /** bytes of all blobs */
  bytes: number;
}

const sha256 = (b: Buffer): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;

/** a tar archive holding one file NAME (mode 0644) with DATA */
function tarOf(name: string, data: Buffer): Buffer {
  const header = Buffer.alloc(512);
  header.write(name, 0, 100);
  header.write('0000644\0', 100);
  header.write('0000000\0', 108);
  header.write('0000000\0', 116);
  header.write(`${data.length.toString(8).padStart(11, '0')}\0`, 124);
  header.write(`${Math.floor(Date.now() / 1000).toString(8).padStart(11, '0')}\0`, 136);
  header.write('        ', 148); // the checksum counts itself as spaces
  header.write('0', 156);
  header.write('ustar\0', 257);
  header.write('00', 263);
  let sum = 0;
  for (const byte of header) sum += byte;
  header.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148);
  return Buffer.concat([header, data, Buffer.alloc((512 - (data.length % 512)) % 512), Buffer.alloc(1024)]);
}

/**
 * pushes TAG (named after the registry's pull address) as an image of `layers` layers, each
 * one file of `bytesPerLayer` random (incompressible) bytes, straight to the registry's push
 * address with the site login: no engine holds a copy, so the first pull of it is a miss
 * everywhere. Layers are gzip streams without compression (stored blocks), so a layer's blob is
 * as big as its content. One layer is built and sent at a time.
 */
export async function pushRandomLayersImage(tag: string, layers: number, bytesPerLayer: number): Promise<PushedLayers> {
  const { address, pushAddress } = sandbox().registry;
  if (!tag.startsWith(`${address}/`)) throw new Error(`pushRandomLayersImage: ${tag} is not an image of the sandbox registry ${address}`);
  const rest = tag.slice(address.length + 1);
  const [repo, ref] = [rest.slice(0, rest.lastIndexOf(':')), rest.slice(rest.lastIndexOf(':') + 1)];
  const authorization = `Basic ${Buffer.from(`site:${registryPushLogin()}`).toString('base64')}`;
  const base = `http://${pushAddress}/v2/${repo}`;
  const putBlob = async (blob: Buffer): Promise<string> => {
    const digest = sha256(blob);
    const start = await fetch(`${base}/blobs/uploads/`, { method: 'POST', headers: { authorization } });
    const location = start.headers.get('location');
    if (start.status !== 202 || !location) throw new Error(`starting a blob upload to ${base}: HTTP ${start.status} ${await start.text()}`);
    const url = new URL(location, `http://${pushAddress}`);
    url.searchParams.set('digest', digest);
    const put = await fetch(url, { method: 'PUT', headers: { authorization, 'content-type': 'application/octet-stream' }, body: blob });
    if (put.status !== 201) throw new Error(`uploading ${digest} to ${base}: HTTP ${put.status} ${await put.text()}`);
    return digest;
  };
  const layerDescs: { mediaType: string; size: number; digest: string }[] = [];
  const diffIds: string[] = [];
  for (let i = 0; i < layers; i++) {
    const tar = tarOf(`layer${i}.bin`, randomFillSync(Buffer.allocUnsafe(bytesPerLayer)));
    diffIds.push(sha256(tar));
    const gz = gzipSync(tar, { level: zlibConstants.Z_NO_COMPRESSION });
    layerDescs.push({ mediaType: 'application/vnd.docker.image.rootfs.diff.tar.gzip', size: gz.length, digest: await putBlob(gz) });
  }
  const config = Buffer.from(JSON.stringify({
    architecture: 'amd64', os: 'linux', created: new Date().toISOString(), config: {},
    rootfs: { type: 'layers', diff_ids: diffIds },
    history: diffIds.map((_, i) => ({ created_by: `berth test: ${bytesPerLayer} random bytes in /layer${i}.bin` })),
  }));
  const configDigest = await putBlob(config);
  const manifest = JSON.stringify({
    schemaVersion: 2, mediaType: 'application/vnd.docker.distribution.manifest.v2+json',
    config: { mediaType: 'application/vnd.docker.container.image.v1+json', size: config.length, digest: configDigest },
    layers: layerDescs,
  });
  const put = await fetch(`${base}/manifests/${ref}`, { method: 'PUT', headers: { authorization, 'content-type': 'application/vnd.docker.distribution.manifest.v2+json' }, body: manifest });
  const manifestDigest = put.headers.get('docker-content-digest');
  if (put.status !== 201 || !manifestDigest) throw new Error(`putting the manifest of ${tag}: HTTP ${put.status} ${await put.text()}`);
  return {
    digestRef: `${address}/${repo}@${manifestDigest}`, manifestDigest,
    blobs: [configDigest, ...layerDescs.map((l) => l.digest)],
    bytes: config.length + layerDescs.reduce((a, l) => a + l.size, 0),
  };
}

/** blob digest → [GETs answered 200, bytes sent] for REPO in a registry or nginx access log, from byte offset `from` on */
export function blobGets(log: string, from: number, repo: string): Map<string, [number, number]> {
  const counts = new Map<string, [number, number]>();
  const re = new RegExp(`"GET /v2/${repo}/blobs/(sha256:[a-f0-9]{64}) HTTP[^"]*" 200 (\\d+)`, 'g');
  for (const m of readFileSync(log).subarray(from).toString().matchAll(re)) {
    const [n, b] = counts.get(m[1]!) ?? [0, 0];
    counts.set(m[1]!, [n + 1, b + Number(m[2])]);
  }
  return counts;
}
