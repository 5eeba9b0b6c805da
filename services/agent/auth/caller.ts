// Who is calling. The admin socket is root's (mode 0600): its callers are trusted. On the
// user socket every call must carry a munge credential whose payload names the method and
// job it is for; munged refuses replayed and expired credentials, berthd refuses stale ones.
import type * as grpc from '@grpc/grpc-js';
import { BerthError } from '../../shared/errors';
import { type MungeVerifier, mungePayload } from '../../shared/munge';
import { MUNGE_METADATA_KEY } from '../../shared/proto-names';

export type Caller = { kind: 'root' } | { kind: 'user'; uid: number; gid: number };

export type Trust = 'admin-socket' | 'user-socket';

export class CallerAuthenticator {
  constructor(private readonly munge: MungeVerifier) {}

  async authenticate(trust: Trust, metadata: grpc.Metadata, method: string, jobId: string): Promise<Caller> {
    if (trust === 'admin-socket') return { kind: 'root' };
    const [value] = metadata.get(MUNGE_METADATA_KEY);
    if (typeof value !== 'string' || value === '') {
      throw new BerthError('UNAUTHENTICATED', `${method}: no munge credential sent; use the berth CLI, which sends one`);
    }
    let id;
    try {
      id = await this.munge.verify(value);
    } catch (err) {
      throw new BerthError('UNAUTHENTICATED', `${method}: ${(err as Error).message}`);
    }
    const expected = mungePayload(method, jobId);
    if (id.payload !== expected) {
      throw new BerthError('UNAUTHENTICATED', `${method}: the munge credential was made for '${id.payload}', not '${expected}'`);
    }
    if (id.uid === 0) return { kind: 'root' };
    return { kind: 'user', uid: id.uid, gid: id.gid };
  }
}

export function requireRoot(caller: Caller, what: string): void {
  if (caller.kind !== 'root') throw new BerthError('PERMISSION_DENIED', `${what} is for root only (slurmd's hooks and admins)`);
}
