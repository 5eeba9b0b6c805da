// Who may do what over berthd's TCP listener (config `remoteAccess`). The TLS handshake has
// already refused any certificate the site CA did not sign; here the certificate's identity
// (its CN, or a DNS, URI or email SAN) is looked up in the configured clients, and the method
// must be one the identity's roles allow. The Slurm hooks and job steps are never served
// over TCP: they belong to the node itself.
import type { PeerCertificate } from 'node:tls';
import { BerthError } from '../../shared/errors';

export type Role = 'read' | 'admin';

export interface RemoteCaller {
  kind: 'remote';
  identity: string;
  roles: readonly Role[];
}

/** CN first, then the subject alternative names (DNS, URI, email), as the certificate lists them. */
export function certificateIdentities(cert: Pick<PeerCertificate, 'subject' | 'subjectaltname'> | undefined): string[] {
  if (!cert) return [];
  const out: string[] = [];
  const cn = cert.subject?.CN;
  for (const c of Array.isArray(cn) ? cn : cn ? [cn] : []) out.push(c);
  for (const part of (cert.subjectaltname ?? '').split(/,\s*/)) {
    const m = part.match(/^(DNS|URI|email):(.+)$/);
    if (m) out.push(m[2]!);
  }
  return out;
}

export class RemoteAccessPolicy {
  private readonly clients: ReadonlyMap<string, readonly Role[]>;

  /** METHOD_ROLES: the role each method needs over TCP (server/method-table.ts remoteRoles); a method absent is never served over TCP */
  constructor(clients: Readonly<Record<string, readonly Role[]>>, private readonly methodRoles: Readonly<Record<string, Role>>) {
    this.clients = new Map(Object.entries(clients));
  }

  /** The caller a verified client certificate stands for, allowed to call METHOD, or a PERMISSION_DENIED saying why not. */
  authorize(cert: Pick<PeerCertificate, 'subject' | 'subjectaltname'> | undefined, method: string): RemoteCaller {
    const ids = certificateIdentities(cert);
    const identity = ids.find((i) => this.clients.has(i));
    if (identity === undefined) {
      throw new BerthError('PERMISSION_DENIED', `${method}: the client certificate (${ids.length ? ids.join(', ') : 'no CN or SAN'}) is signed by the site CA but names no client in berthd's remoteAccess.clients; an admin adds its CN there with the roles it needs`);
    }
    const roles = this.clients.get(identity)!;
    const needed = Object.hasOwn(this.methodRoles, method) ? this.methodRoles[method] : undefined;
    if (needed === undefined) {
      throw new BerthError('PERMISSION_DENIED', `${method} is not served over TCP: it belongs to the node's Slurm hooks and job steps (the local sockets)`);
    }
    const has = roles.includes('admin') || roles.includes(needed);
    if (!has) {
      throw new BerthError('PERMISSION_DENIED', `${method} needs role '${needed}'; identity '${identity}' has ${roles.length ? `role(s) ${roles.map((r) => `'${r}'`).join(', ')}` : 'no roles'} (berthd config remoteAccess.clients)`);
    }
    return { kind: 'remote', identity, roles };
  }
}
