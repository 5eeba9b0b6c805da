// The memlock limit for job containers. RDMA needs it unlimited; setting a limit above the
// runtime's own hard limit needs CAP_SYS_RESOURCE, which an agent inside a container (or on
// a locked-down host) may lack. Then the node's hard limit is used and berthd says so.
import { readFileSync } from 'node:fs';

const CAP_SYS_RESOURCE = 24n;

export interface MemlockLimit {
  /** bytes, or -1 for unlimited (the Docker API's spelling) */
  bytes: number;
  clampedFrom?: number;
}

export function readOwnMemlock(procStatus: string, procLimits: string): { hardBytes: number; canRaise: boolean } {
  const capEff = procStatus.match(/^CapEff:\s*([0-9a-f]+)/m)?.[1] ?? '0';
  const canRaise = ((BigInt('0x' + capEff) >> CAP_SYS_RESOURCE) & 1n) === 1n;
  const line = procLimits.split('\n').find((l) => l.startsWith('Max locked memory')) ?? '';
  const hard = line.trim().split(/\s+/)[4];
  return { hardBytes: hard === undefined || hard === 'unlimited' ? -1 : Number(hard), canRaise };
}

export function memlockFor(configured: number, own: { hardBytes: number; canRaise: boolean }): MemlockLimit {
  if (own.canRaise || own.hardBytes === -1) return { bytes: configured };
  if (configured === -1 || configured > own.hardBytes) return { bytes: own.hardBytes, clampedFrom: configured };
  return { bytes: configured };
}

export function nodeMemlock(configured: number): MemlockLimit {
  try {
    return memlockFor(configured, readOwnMemlock(readFileSync('/proc/self/status', 'utf8'), readFileSync('/proc/self/limits', 'utf8')));
  } catch {
    return { bytes: configured };
  }
}
