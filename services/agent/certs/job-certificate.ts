// What a berth job certificate says and how to read it back. dockerd, listening with
// --tlsverify, hands the AuthZ plugin the client certificate's CN as `User` and the peer chain
// in `RequestPeerCertificates`; the job the certificate was issued for is in its subject
// (OU=job-<id>) and in a SAN URI (berth://job/<id>). Reading uses Node's own X.509 parser
// only, so that the plugin's per-request path does not load the X.509 library that issuing
// needs (node-ca.ts).
import { X509Certificate } from 'node:crypto';
import { isJobId } from '../../shared/ids';

export interface JobIdentity {
  /** the CN: dockerd's authz `User` */
  user: string;
  jobId: string;
  /** from the berth://uid/<uid> SAN URI, when the certificate has one */
  uid?: number;
}

// Names must survive the round trip through a DN unchanged and unescaped (Node prints
// subjects RFC 2253-escaped, dockerd passes the CN raw), so only the characters POSIX, Slurm
// and directory-service user names use; 64 is the X.520 upper bound for a CN.
const USER_NAME = /^[A-Za-z0-9_][A-Za-z0-9_.@-]{0,62}\$?$/;
const CLIENT_AUTH = '1.3.6.1.5.5.7.3.2';

export const JOB_OU_PREFIX = 'job-';
export const JOB_URI_PREFIX = 'berth://job/';
export const UID_URI_PREFIX = 'berth://uid/';

export function isCertificateUserName(user: string): boolean {
  return USER_NAME.test(user);
}

export function isCertificateJobId(jobId: string): boolean {
  return isJobId(jobId);
}

/**
 * One certificate from what a caller may hold: PEM text (the first block of a chain), the
 * base64 of PEM text (how dockerd encodes each entry of RequestPeerCertificates: Go's JSON
 * of the PEM bytes), or base64 DER. undefined when it is none of these.
 */
export function readCertificate(input: string | Buffer): X509Certificate | undefined {
  const pemOf = (text: string): string | undefined =>
    /-----BEGIN CERTIFICATE-----[A-Za-z0-9+/=\s]+?-----END CERTIFICATE-----/.exec(text)?.[0];
  const asText = Buffer.isBuffer(input) ? input.toString('latin1') : input;
  let source: string | Buffer | undefined = pemOf(asText);
  if (!source && Buffer.isBuffer(input)) source = input; // raw DER
  if (!source && /^[A-Za-z0-9+/=\s]+$/.test(asText)) {
    const bytes = Buffer.from(asText, 'base64');
    source = pemOf(bytes.toString('latin1')) ?? bytes;
  }
  if (!source || source.length === 0) return undefined;
  try {
    return new X509Certificate(source);
  } catch {
    return undefined;
  }
}

/**
 * The user and job a berth client certificate was issued for, or undefined when it is not
 * one (wrong shape, a CA, no clientAuth, OU and SAN disagreeing). This reads; it does not
 * check who signed it: dockerd has verified the chain against the node CA before the plugin
 * sees it. Where that is not so, use NodeCertificateAuthority.verifyJobCertificate.
 */
export function parseJobFromCertificate(pem: string | Buffer): JobIdentity | undefined {
  const cert = readCertificate(pem);
  if (!cert || cert.ca) return undefined;
  // the extended key usages: Node 20 calls them keyUsage, later versions also extKeyUsage
  const eku = (cert as X509Certificate & { extKeyUsage?: string[] }).extKeyUsage ?? cert.keyUsage ?? [];
  if (!eku.includes(CLIENT_AUTH)) return undefined;

  // Node prints one attribute per line, `KEY=value`, escaped: a value with separators or
  // control characters then fails the strict patterns below, which is what we want.
  const attrs = cert.subject.split('\n').filter((l) => l !== '');
  if (attrs.length !== 2) return undefined;
  let user: string | undefined;
  let jobId: string | undefined;
  for (const line of attrs) {
    const eq = line.indexOf('=');
    const key = line.slice(0, eq);
    const value = line.slice(eq + 1);
    if (key === 'CN' && user === undefined) user = value;
    else if (key === 'OU' && jobId === undefined && value.startsWith(JOB_OU_PREFIX)) jobId = value.slice(JOB_OU_PREFIX.length);
    else return undefined;
  }
  if (user === undefined || jobId === undefined || !isCertificateUserName(user) || !isCertificateJobId(jobId)) return undefined;

  let uid: number | undefined;
  for (const name of (cert.subjectAltName ?? '').split(', ')) {
    if (name.startsWith(`URI:${JOB_URI_PREFIX}`) && name.slice(4 + JOB_URI_PREFIX.length) !== jobId) return undefined;
    if (name.startsWith(`URI:${UID_URI_PREFIX}`)) {
      const text = name.slice(4 + UID_URI_PREFIX.length);
      if (!/^[0-9]{1,10}$/.test(text)) return undefined;
      uid = Number(text);
    }
  }
  return uid === undefined ? { user, jobId } : { user, jobId, uid };
}
