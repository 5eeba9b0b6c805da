// The node's own certificate authority for dockerd's TLS socket. dockerd listens on
// 127.0.0.1 with --tlsverify and trusts this CA alone; berthd issues it a server certificate
// and each job's user a client certificate whose CN dockerd hands to the AuthZ plugin as
// `User` and whose subject names the job. Whoever holds the CA key can act as any user on
// this node's dockerd, so the key never leaves `dir` (0700, key 0600) and is never reused
// across nodes.
//
// Keys are EC P-256: generated in well under a millisecond where RSA 2048 takes 100-200 ms,
// once per job, and both Node's TLS and Go's (dockerd, the docker CLI) accept them. Node's
// crypto makes keys and verifies certificates but cannot issue them, so @peculiar/x509
// builds the certificates (rather than an openssl process per job); the keys and signatures
// are Node's own WebCrypto. The library adds about 790 kB to the bundle and 14 MB of RSS once
// loaded: load this module only where Docker access for jobs is enabled.
//
// @peculiar/x509 registers its algorithms with tsyringe, which needs the Reflect metadata
// API at load time: this import must come before the library's.
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { X509Certificate, createPrivateKey, randomBytes, webcrypto, type KeyObject } from 'node:crypto';
import { chmodSync, lstatSync, mkdirSync, readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import path from 'node:path';
import { BerthError } from '../../shared/errors';
import { writeFileAtomic } from '../../shared/atomic-write';
import {
  JOB_OU_PREFIX, JOB_URI_PREFIX, UID_URI_PREFIX, isCertificateJobId, isCertificateUserName, parseJobFromCertificate, readCertificate,
  type JobIdentity,
} from './job-certificate';

// The authz plugin should import it from job-certificate.ts, which does not load the library.
export { parseJobFromCertificate, type JobIdentity } from './job-certificate';

export const CA_KEY_FILE = 'ca-key.pem';
export const CA_CERT_FILE = 'ca.pem';

const CA_YEARS = 10;
const MINUTE = 60_000;
const DAY = 24 * 60 * MINUTE;
/** Certificates start this long before they are made, so that a node whose clock is a little behind berthd's accepts them. */
const CLOCK_SKEW_MS = 5 * MINUTE;
const EC = { name: 'ECDSA', namedCurve: 'P-256' } as const;
const SIGNING = { name: 'ECDSA', hash: 'SHA-256' } as const;
const NODE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,49}$/; // the CA's CN must stay within 64 characters

/** The CA's files are unusable; the message says what is wrong and how to start over.
 * Outside the catalogue: met only when berthd opens its CA at start (it exits with the message); a refused certificate request is a BerthError */
export class NodeCaError extends Error {
  override readonly name = 'NodeCaError';
}

export interface NodeCaOptions {
  /** the clock; tests move it */
  now?: () => Date;
}

export interface ServerCertificateRequest {
  commonName: string;
  /** localhost is always included */
  dnsNames?: string[];
  /** 127.0.0.1 is always included */
  ipAddresses?: string[];
  days: number;
}

export interface ClientCertificateRequest {
  /** the job's user name: the CN, which dockerd passes to the AuthZ plugin as User */
  user: string;
  uid: number;
  jobId: string;
  /** the job's end (its time limit); the certificate never outlives the CA */
  notAfter: Date;
}

export interface IssuedCertificate {
  certPem: string;
  /** PKCS#8 PEM, which dockerd and the docker CLI read */
  keyPem: string;
}

export interface IssuedClientCertificate extends IssuedCertificate {
  /** upper-case hex, as crypto.X509Certificate prints it */
  serial: string;
  notBefore: Date;
  notAfter: Date;
}

function pem(der: ArrayBuffer, label: string): string {
  const b64 = Buffer.from(der).toString('base64').replace(/(.{64})/g, '$1\n');
  return `-----BEGIN ${label}-----\n${b64}${b64.endsWith('\n') ? '' : '\n'}-----END ${label}-----\n`;
}

/** 16 random bytes, first byte 0x01-0x7f: positive and without a leading zero, so its hex reads back unchanged. */
function newSerial(): string {
  const bytes = randomBytes(16);
  bytes[0] = (bytes[0]! % 0x7f) + 1;
  return bytes.toString('hex').toUpperCase();
}

async function newKeyPair(): Promise<{ keys: webcrypto.CryptoKeyPair; keyPem: string }> {
  const keys = (await webcrypto.subtle.generateKey(EC, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const pkcs8 = await webcrypto.subtle.exportKey('pkcs8', keys.privateKey);
  return { keys, keyPem: pem(pkcs8, 'PRIVATE KEY') };
}

function caSubject(node: string): string {
  return `berth node CA ${node}`;
}

function errnoCode(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException).code;
}

export class NodeCertificateAuthority {
  private constructor(
    readonly node: string,
    readonly dir: string,
    /** the CA certificate (PEM): ca.pem for dockerd's --tlscacert and each job's bundle */
    readonly certPem: string,
    private readonly cert: X509Certificate,
    private readonly issuerName: x509.Name,
    private readonly publicKeyDer: ArrayBuffer,
    private readonly signingKey: webcrypto.CryptoKey,
    private readonly now: () => Date,
  ) {}

  get notAfter(): Date {
    return new Date(this.cert.validTo);
  }

  /**
   * The CA in `dir` (ca-key.pem, ca.pem), made on first use. An existing pair must be
   * berth's own for this node, unexpired, a CA, its key matching and private to this user;
   * anything else is refused rather than repaired.
   */
  static async loadOrCreate(dir: string, node: string, options: NodeCaOptions = {}): Promise<NodeCertificateAuthority> {
    if (!NODE_NAME.test(node)) {
      throw new NodeCaError(`node name '${node}' cannot name a CA: use letters, digits, '.', '_' and '-', at most 50 characters`);
    }
    const now = options.now ?? (() => new Date());
    const keyFile = path.join(dir, CA_KEY_FILE);
    const certFile = path.join(dir, CA_CERT_FILE);
    prepareDir(dir);

    const present = [keyFile, certFile].filter((f) => exists(f));
    if (present.length === 0) await create(dir, node, now());
    else if (present.length === 1) {
      throw new NodeCaError(
        `CA directory ${dir} holds ${path.basename(present[0]!)} without ${present[0] === keyFile ? CA_CERT_FILE : CA_KEY_FILE}: ` +
        `the CA is incomplete; delete ${dir} to let berthd make a new one (then restart dockerd with the new server certificate)`,
      );
    }
    return NodeCertificateAuthority.load(dir, node, now);
  }

  private static async load(dir: string, node: string, now: () => Date): Promise<NodeCertificateAuthority> {
    const keyFile = path.join(dir, CA_KEY_FILE);
    const certFile = path.join(dir, CA_CERT_FILE);
    const regenerate = `delete ${dir} to let berthd make a new CA (job certificates and dockerd's server certificate from the old one stop working)`;
    const fail = (what: string): never => {
      throw new NodeCaError(`node CA in ${dir}: ${what}; ${regenerate}`);
    };

    const keyStat = lstatSync(keyFile);
    if (!keyStat.isFile()) fail(`${CA_KEY_FILE} is not a regular file`);
    if (keyStat.uid !== process.geteuid?.()) fail(`${CA_KEY_FILE} belongs to uid ${keyStat.uid}, not to berthd's uid ${process.geteuid?.()}`);
    if ((keyStat.mode & 0o077) !== 0) {
      throw new NodeCaError(
        `node CA in ${dir}: ${CA_KEY_FILE} has mode ${(keyStat.mode & 0o777).toString(8)}, so others may have read it, and whoever has it ` +
        `can act as any user on this node's dockerd; if you are sure no one did, chmod 600 ${keyFile}, otherwise ${regenerate}`,
      );
    }

    const certPem = readFileSync(certFile, 'utf8');
    const cert = readCertificate(certPem);
    if (!cert || !certPem.includes('-----BEGIN CERTIFICATE-----')) return fail(`${CA_CERT_FILE} is not a PEM certificate`);
    let key: KeyObject;
    try {
      key = createPrivateKey(readFileSync(keyFile));
    } catch (err) {
      return fail(`${CA_KEY_FILE} is not a PEM private key (${(err as Error).message})`);
    }
    if (key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== 'prime256v1') {
      fail(`${CA_KEY_FILE} is a ${key.asymmetricKeyType ?? 'unknown'} key${key.asymmetricKeyDetails?.namedCurve ? ` on ${key.asymmetricKeyDetails.namedCurve}` : ''}, not the EC P-256 key berthd makes`);
    }
    if (!cert.checkPrivateKey(key)) fail(`${CA_KEY_FILE} is not the key of the certificate in ${CA_CERT_FILE}`);
    if (!cert.ca) fail(`${CA_CERT_FILE} is not a CA certificate (basicConstraints CA:TRUE missing)`);
    if (cert.subject !== `CN=${caSubject(node)}`) fail(`${CA_CERT_FILE} is '${cert.subject}', not the CA of node ${node} ('CN=${caSubject(node)}')`);
    if (!cert.verify(cert.publicKey)) fail(`${CA_CERT_FILE} is not self-signed by its key`);
    const t = now().getTime();
    if (t >= Date.parse(cert.validTo)) fail(`${CA_CERT_FILE} expired on ${new Date(cert.validTo).toISOString()}`);
    if (t + CLOCK_SKEW_MS < Date.parse(cert.validFrom)) {
      fail(`${CA_CERT_FILE} is valid only from ${new Date(cert.validFrom).toISOString()}, later than this node's clock (${now().toISOString()}): check the clock`);
    }

    const signingKey = await webcrypto.subtle.importKey('pkcs8', key.export({ type: 'pkcs8', format: 'der' }), EC, false, ['sign']);
    const publicKeyDer = new Uint8Array(cert.publicKey.export({ type: 'spki', format: 'der' })).buffer;
    // the issuer of what we sign is the CA's subject exactly as encoded in ca.pem: Go matches names byte for byte
    const issuerName = new x509.X509Certificate(cert.raw).subjectName;
    return new NodeCertificateAuthority(node, dir, certPem, cert, issuerName, publicKeyDer, signingKey, now);
  }

  /** dockerd's certificate for its TCP socket: serverAuth, SAN with localhost and 127.0.0.1. */
  async issueServerCertificate(req: ServerCertificateRequest): Promise<IssuedCertificate> {
    if (!req.commonName || req.commonName.length > 64) {
      throw new BerthError('INVALID_REQUEST', `server certificate common name '${req.commonName}' must be 1 to 64 characters`);
    }
    if (!Number.isFinite(req.days) || req.days <= 0) throw new BerthError('INVALID_REQUEST', `server certificate validity of ${req.days} days must be a positive number`);
    const ips = [...new Set(['127.0.0.1', ...(req.ipAddresses ?? [])])];
    const bad = ips.find((ip) => isIP(ip) === 0);
    if (bad) throw new BerthError('INVALID_REQUEST', `'${bad}' is not an IP address; give server certificate addresses as IPv4 or IPv6 literals`);
    const dns = [...new Set(['localhost', ...(req.dnsNames ?? [])])];
    const badName = dns.find((d) => !/^[A-Za-z0-9*]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$/.test(d));
    if (badName) throw new BerthError('INVALID_REQUEST', `'${badName}' is not a DNS name for a server certificate`);

    const start = this.now().getTime();
    const { keys, keyPem } = await newKeyPair();
    const cert = await this.sign({
      subject: [{ CN: [req.commonName] }],
      publicKey: keys.publicKey,
      notBefore: new Date(start - CLOCK_SKEW_MS),
      notAfter: new Date(Math.min(start + req.days * DAY, this.notAfter.getTime())),
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
        new x509.SubjectAlternativeNameExtension([...dns.map((value) => ({ type: 'dns' as const, value })), ...ips.map((value) => ({ type: 'ip' as const, value }))]),
      ],
    });
    return { certPem: cert.toString('pem') + '\n', keyPem };
  }

  /**
   * A job user's certificate for the docker CLI: CN = the user (dockerd's authz User),
   * OU=job-<id> and SAN URIs berth://job/<id> and berth://uid/<uid>, clientAuth only, valid
   * from five minutes ago (clock skew) until the job's end, never beyond the CA.
   */
  async issueClientCertificate(req: ClientCertificateRequest): Promise<IssuedClientCertificate> {
    const what = `Docker client certificate for job ${req.jobId}`;
    if (!isCertificateJobId(req.jobId)) throw new BerthError('INVALID_REQUEST', `${what}: '${req.jobId}' is not a Slurm job id (digits only)`);
    if (!isCertificateUserName(req.user)) {
      throw new BerthError('USER_NAME_UNSUPPORTED', `${what}: user name '${req.user}' cannot be a certificate CN: berth allows letters, digits, '_', '.', '@', '-' and a final '$', at most 64 characters`);
    }
    if (!Number.isInteger(req.uid) || req.uid <= 0 || req.uid > 0xffffffff) {
      throw new BerthError(req.uid === 0 ? 'ROOT_JOB_REFUSED' : 'INVALID_REQUEST', `${what}: uid ${req.uid} is not allowed; berth never gives root (uid 0) Docker access through a certificate`);
    }
    const start = this.now().getTime();
    const end = req.notAfter instanceof Date ? req.notAfter.getTime() : Number.NaN;
    if (!Number.isFinite(end)) throw new BerthError('INVALID_REQUEST', `${what}: the job's end time is not a valid date`);
    if (end <= start) {
      throw new BerthError('JOB_NOT_RUNNING', `${what}: the job's end (${new Date(end).toISOString()}) is already past; a certificate would be born expired`);
    }

    const serial = newSerial();
    const notBefore = new Date(Math.max(start - CLOCK_SKEW_MS, Date.parse(this.cert.validFrom)));
    const notAfter = new Date(Math.min(end, this.notAfter.getTime()));
    const { keys, keyPem } = await newKeyPair();
    const cert = await this.sign({
      serialNumber: serial,
      subject: [{ OU: [JOB_OU_PREFIX + req.jobId] }, { CN: [req.user] }],
      publicKey: keys.publicKey,
      notBefore,
      notAfter,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.clientAuth]),
        new x509.SubjectAlternativeNameExtension([{ type: 'url', value: JOB_URI_PREFIX + req.jobId }, { type: 'url', value: UID_URI_PREFIX + req.uid }]),
      ],
    });
    // X.509 keeps whole seconds: report what the certificate says
    return { certPem: cert.toString('pem') + '\n', keyPem, serial, notBefore: cert.notBefore, notAfter: cert.notAfter };
  }

  /**
   * parseJobFromCertificate, for a certificate that nothing has verified yet: undefined
   * unless this CA signed it and it is valid now.
   */
  verifyJobCertificate(pem: string | Buffer): JobIdentity | undefined {
    const cert = readCertificate(pem);
    if (!cert || !cert.checkIssued(this.cert) || !cert.verify(this.cert.publicKey)) return undefined;
    const t = this.now().getTime();
    if (t < Date.parse(cert.validFrom) || t >= Date.parse(cert.validTo)) return undefined;
    return parseJobFromCertificate(cert.raw);
  }

  private async sign(p: { serialNumber?: string; subject: x509.JsonName; publicKey: webcrypto.CryptoKey; notBefore: Date; notAfter: Date; extensions: x509.Extension[] }): Promise<x509.X509Certificate> {
    const crypto = webcrypto as webcrypto.Crypto;
    return x509.X509CertificateGenerator.create({
      serialNumber: p.serialNumber ?? newSerial(),
      subject: p.subject,
      issuer: this.issuerName,
      publicKey: p.publicKey,
      signingKey: this.signingKey,
      signingAlgorithm: SIGNING,
      notBefore: p.notBefore,
      notAfter: p.notAfter,
      extensions: [
        ...p.extensions,
        await x509.AuthorityKeyIdentifierExtension.create(this.publicKeyDer, false, crypto),
        await x509.SubjectKeyIdentifierExtension.create(p.publicKey, false, crypto),
      ],
    }, crypto);
  }
}

function exists(file: string): boolean {
  try {
    lstatSync(file);
    return true;
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return false;
    throw err;
  }
}

/** `dir` exists as berthd's own directory, 0700. */
function prepareDir(dir: string): void {
  try {
    const st = lstatSync(dir);
    if (st.isSymbolicLink() || !st.isDirectory()) {
      throw new NodeCaError(`CA directory ${dir} is ${st.isSymbolicLink() ? 'a symlink' : 'not a directory'}; point berthd at a real directory it owns`);
    }
    if (st.uid !== process.geteuid?.()) {
      throw new NodeCaError(`CA directory ${dir} belongs to uid ${st.uid}, not to berthd's uid ${process.geteuid?.()}; give berthd a directory of its own`);
    }
  } catch (err) {
    if (errnoCode(err) !== 'ENOENT') throw err;
    mkdirSync(dir, { recursive: true, mode: 0o700 });
  }
  chmodSync(dir, 0o700); // ours alone, whatever the umask or an admin's mkdir left
}

/** A new self-signed CA, written key first: a crash in between leaves an incomplete pair that loading reports. */
async function create(dir: string, node: string, now: Date): Promise<void> {
  const crypto = webcrypto as webcrypto.Crypto;
  const { keys, keyPem } = await newKeyPair();
  const notAfter = new Date(now.getTime());
  notAfter.setUTCFullYear(notAfter.getUTCFullYear() + CA_YEARS);
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: newSerial(),
    name: [{ CN: [caSubject(node)] }],
    keys,
    signingAlgorithm: SIGNING,
    notBefore: new Date(now.getTime() - CLOCK_SKEW_MS),
    notAfter,
    extensions: [
      // pathLen 0: this CA signs leaf certificates only, never another CA
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey, false, crypto),
    ],
  }, crypto);
  const write = (file: string, text: string, mode: number): void => writeFileAtomic(path.join(dir, file), text, { mode });
  write(CA_KEY_FILE, keyPem, 0o600);
  write(CA_CERT_FILE, cert.toString('pem') + '\n', 0o644);
}
