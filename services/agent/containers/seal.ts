// Which containers berthd made itself. Its labels say so, but labels are text anyone who
// reaches dockerd's API could write; so berthd seals each container it makes: an HMAC, under
// a key only root can read (stateDir/seal.key), over its name and identity labels. Recovery,
// the effect gate and the listings trust a container as berth's only with a valid seal.
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { LABEL } from './labels';

export const SEAL_LABEL = 'io.berth.seal';

/** The labels that say whose and what a berth container is; changing any breaks the seal. */
const SEALED = [LABEL.role, LABEL.jobId, LABEL.node, LABEL.uid, LABEL.gid, LABEL.user, LABEL.imageDigest, LABEL.workDir, LABEL.startTime, LABEL.stepId];

export class ContainerSeal {
  constructor(private readonly key: Buffer) {}

  /** The node's key: made (32 random bytes, mode 0600) on first use. */
  static loadOrCreate(stateDir: string): ContainerSeal {
    const file = path.join(stateDir, 'seal.key');
    let key: Buffer;
    try {
      key = readFileSync(file);
    } catch {
      mkdirSync(stateDir, { recursive: true, mode: 0o700 });
      key = randomBytes(32);
      writeFileSync(file, key, { mode: 0o600, flag: 'wx' });
    }
    chmodSync(file, 0o600);
    if (key.length < 32) throw new Error(`${file} holds ${key.length} bytes, not a 32-byte key; delete it and restart berthd (containers of running jobs are then no longer trusted)`);
    return new ContainerSeal(key);
  }

  private mac(name: string, labels: Record<string, string>): string {
    const text = JSON.stringify([name.replace(/^\//, ''), ...SEALED.map((k) => labels[k] ?? '')]);
    return createHmac('sha256', this.key).update(text).digest('hex');
  }

  /** labels plus the seal for a container to be created with `name` */
  seal(name: string, labels: Record<string, string>): Record<string, string> {
    return { ...labels, [SEAL_LABEL]: this.mac(name, labels) };
  }

  /** whether berthd made this container: its seal matches its name and labels */
  verify(name: string, labels: Record<string, string>): boolean {
    const given = labels[SEAL_LABEL];
    if (typeof given !== 'string' || !/^[0-9a-f]{64}$/.test(given)) return false;
    return timingSafeEqual(Buffer.from(given, 'hex'), Buffer.from(this.mac(name, labels), 'hex'));
  }
}
