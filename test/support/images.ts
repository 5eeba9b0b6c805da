// Small images for the tests, made from the host's static busybox and pushed to the sandbox
// registry through node n1's dockerd (and removed from it again).
import { execFileSync } from 'node:child_process';
import { closeSync, mkdirSync, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
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
