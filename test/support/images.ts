// Small images for the tests, made from the host's static busybox and pushed to the sandbox
// registry through node n1's dockerd (and removed from it again).
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { node } from './stack';

const APPLETS = ['sh', 'cat', 'sleep', 'touch', 'ls', 'id', 'test', 'echo', 'grep', 'cut', 'pwd', 'kill', 'true', 'false'];

/** pushes TAG holding busybox (as /bin/sh and friends) and `files` (path → content) */
export function pushBusyboxImage(tag: string, files: Record<string, string>): void {
  const sock = node('n1').dockerSocket;
  const root = mkdtempSync(path.join(os.tmpdir(), 'berth-image-'));
  try {
    for (const d of ['bin', 'etc', 'tmp']) mkdirSync(path.join(root, d), { mode: 0o755 });
    execFileSync('chmod', ['1777', path.join(root, 'tmp')]);
    execFileSync('cp', ['/bin/busybox', path.join(root, 'bin/busybox')]);
    for (const a of APPLETS) execFileSync('ln', ['-s', 'busybox', path.join(root, 'bin', a)]);
    for (const [f, text] of Object.entries(files)) {
      mkdirSync(path.dirname(path.join(root, f)), { recursive: true });
      writeFileSync(path.join(root, f), text);
    }
    execFileSync('sh', ['-c', `tar -C ${root} -c . | docker -H unix://${sock} import - ${tag} >/dev/null && docker -H unix://${sock} push ${tag} >/dev/null && docker -H unix://${sock} rmi ${tag} >/dev/null`]);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}
