// Who is calling. The admin socket is root's (mode 0600): its callers are trusted. On the
// user socket every call must carry a munge credential whose payload names the method and
// job it is for; munged refuses replayed and expired credentials, berthd refuses stale ones.
import type * as grpc from '@grpc/grpc-js';
import type { PeerCertificate } from 'node:tls';
import { BerthError } from '../../shared/errors';
import { type MungeVerifier, mungePayload } from '../../shared/munge';
import { MUNGE_METADATA_KEY } from '../../shared/proto-names';
import type { RemoteAccessPolicy, RemoteCaller } from './remote-access';

export type Caller = { kind: 'root' } | { kind: 'user'; uid: number; gid: number } | RemoteCaller;

/** admin-socket: root by the socket's mode; user-socket: munge; tcp: mutual TLS and roles */
export type Trust = 'admin-socket' | 'user-socket' | 'tcp';

export class CallerAuthenticator {
  constructor(private readonly munge: MungeVerifier, private readonly remote?: RemoteAccessPolicy) {}

  /** PEER is the verified client certificate of a TCP call. */
  async authenticate(trust: Trust, metadata: grpc.Metadata, method: string, jobId: string, peer?: PeerCertificate): Promise<Caller> {
    if (trust === 'admin-socket') return { kind: 'root' };
    if (trust === 'tcp') {
      if (!this.remote) throw new BerthError('PERMISSION_DENIED', `${method}: remote access is not configured on this node`);
      return this.remote.authorize(peer, method);
    }
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

/** The name recorded for who did something (a drain). */
export function callerName(caller: Caller): string {
  return caller.kind === 'root' ? 'root' : caller.kind === 'remote' ? caller.identity : `uid ${caller.uid}`;
}

/** Root on the node; a remote caller has already passed the role its method needs. */
export function requireRoot(caller: Caller, what: string): void {
  if (caller.kind === 'user') throw new BerthError('PERMISSION_DENIED', `${what} is for root only (slurmd's hooks and admins)`);
}
