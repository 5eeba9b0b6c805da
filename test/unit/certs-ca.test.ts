import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import assert from 'node:assert/strict';
import { X509Certificate, createPrivateKey, webcrypto } from 'node:crypto';
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { parseJobFromCertificate, readCertificate } from '../../services/agent/certs/job-certificate';
import { NodeCaError, NodeCertificateAuthority } from '../../services/agent/certs/node-ca';

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const YEAR = 365.25 * 24 * HOUR;

const root = mkdtempSync(path.join(os.tmpdir(), 'berth-certs-unit-'));
let seq = 0;
const newDir = () => path.join(root, `ca-${++seq}`);
after(() => rmSync(root, { recursive: true, force: true }));

function near(actual: Date | string, expected: number, slackMs: number, what: string): void {
  const t = typeof actual === 'string' ? Date.parse(actual) : actual.getTime();
  assert.ok(Math.abs(t - expected) <= slackMs, `${what}: ${new Date(t).toISOString()} is not within ${slackMs} ms of ${new Date(expected).toISOString()}`);
}

function keyUsage(pem: string): number | undefined {
  return new x509.X509Certificate(pem).getExtension(x509.KeyUsagesExtension)?.usages;
}

describe('node CA', () => {
  it('is made on first use: P-256, self-signed CA for the node, 10 years, files private', async () => {
    const dir = newDir();
    const ca = await NodeCertificateAuthority.loadOrCreate(dir, 'n1');
    assert.equal(statSync(dir).mode & 0o777, 0o700);
    assert.equal(statSync(path.join(dir, 'ca-key.pem')).mode & 0o777, 0o600);
    assert.equal(statSync(path.join(dir, 'ca.pem')).mode & 0o777, 0o644);
    assert.equal(readFileSync(path.join(dir, 'ca.pem'), 'utf8'), ca.certPem);

    const cert = new X509Certificate(ca.certPem);
    assert.equal(cert.ca, true);
    assert.equal(cert.subject, 'CN=berth node CA n1');
    assert.equal(cert.issuer, cert.subject);
    assert.ok(cert.checkIssued(cert));
    assert.ok(cert.verify(cert.publicKey));
    assert.ok(cert.checkPrivateKey(createPrivateKey(readFileSync(path.join(dir, 'ca-key.pem')))));
    assert.equal(cert.publicKey.asymmetricKeyType, 'ec');
    assert.equal(cert.publicKey.asymmetricKeyDetails?.namedCurve, 'prime256v1');
    near(cert.validFrom, Date.now() - 5 * MINUTE, 5000, 'CA notBefore');
    near(cert.validTo, Date.now() + 10 * YEAR, 2 * 24 * HOUR, 'CA notAfter');
    assert.equal(keyUsage(ca.certPem), x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign);
    assert.equal(new x509.X509Certificate(ca.certPem).getExtension(x509.BasicConstraintsExtension)?.pathLength, 0);
  });

  it('reuses the CA already in the directory', async () => {
    const dir = newDir();
    const first = await NodeCertificateAuthority.loadOrCreate(dir, 'n1');
    const key = readFileSync(path.join(dir, 'ca-key.pem'), 'utf8');
    const again = await NodeCertificateAuthority.loadOrCreate(dir, 'n1');
    assert.equal(again.certPem, first.certPem);
    assert.equal(readFileSync(path.join(dir, 'ca-key.pem'), 'utf8'), key);
    // what the first issued, the second recognises as its own
    const c = await first.issueClientCertificate({ user: 'alice', uid: 2001, jobId: '7', notAfter: new Date(Date.now() + HOUR) });
    assert.deepEqual(again.verifyJobCertificate(c.certPem), { user: 'alice', jobId: '7', uid: 2001 });
  });

  it('refuses a key that is not the certificate\'s, saying to delete the directory', async () => {
    const dir = newDir();
    const other = newDir();
    await NodeCertificateAuthority.loadOrCreate(dir, 'n1');
    await NodeCertificateAuthority.loadOrCreate(other, 'n1');
    copyFileSync(path.join(other, 'ca-key.pem'), path.join(dir, 'ca-key.pem'));
    await assert.rejects(NodeCertificateAuthority.loadOrCreate(dir, 'n1'), (err: Error) => {
      assert.ok(err instanceof NodeCaError);
      assert.match(err.message, /ca-key\.pem is not the key of the certificate in ca\.pem/);
      assert.match(err.message, new RegExp(`delete ${dir} to let berthd make a new CA`));
      return true;
    });
  });

  it('refuses a certificate that is not a CA', async () => {
    const dir = newDir();
    const ca = await NodeCertificateAuthority.loadOrCreate(newDir(), 'n1');
    const leaf = await ca.issueServerCertificate({ commonName: 'berth node CA n1', days: 30 });
    mkdirSync(dir, { mode: 0o700 });
    writeFileSync(path.join(dir, 'ca.pem'), leaf.certPem);
    writeFileSync(path.join(dir, 'ca-key.pem'), leaf.keyPem, { mode: 0o600 });
    await assert.rejects(NodeCertificateAuthority.loadOrCreate(dir, 'n1'), /ca\.pem is not a CA certificate.*delete .* to let berthd make a new CA/);
  });

  it('refuses an expired CA, another node\'s CA, an incomplete pair and a key others can read', async () => {
    const expired = newDir();
    await NodeCertificateAuthority.loadOrCreate(expired, 'n1', { now: () => new Date(Date.now() - 11 * YEAR) });
    await assert.rejects(NodeCertificateAuthority.loadOrCreate(expired, 'n1'), /ca\.pem expired on \d{4}-.*delete /);

    const n2 = newDir();
    await NodeCertificateAuthority.loadOrCreate(n2, 'n2');
    await assert.rejects(NodeCertificateAuthority.loadOrCreate(n2, 'n1'), /'CN=berth node CA n2', not the CA of node n1/);

    const half = newDir();
    await NodeCertificateAuthority.loadOrCreate(half, 'n1');
    unlinkSync(path.join(half, 'ca.pem'));
    await assert.rejects(NodeCertificateAuthority.loadOrCreate(half, 'n1'), /holds ca-key\.pem without ca\.pem: the CA is incomplete; delete /);

    const open = newDir();
    await NodeCertificateAuthority.loadOrCreate(open, 'n1');
    chmodSync(path.join(open, 'ca-key.pem'), 0o644);
    await assert.rejects(NodeCertificateAuthority.loadOrCreate(open, 'n1'), /ca-key\.pem has mode 644.*chmod 600/);

    const link = newDir();
    symlinkSync(open, link);
    await assert.rejects(NodeCertificateAuthority.loadOrCreate(link, 'n1'), /is a symlink/);
    await assert.rejects(NodeCertificateAuthority.loadOrCreate(newDir(), 'bad name'), /node name 'bad name' cannot name a CA/);
  });
});

describe('certificates the node CA issues', async () => {
  const ca = await NodeCertificateAuthority.loadOrCreate(newDir(), 'n1');
  const caCert = new X509Certificate(ca.certPem);

  it("a job client certificate: the user as CN, the job in OU and SAN, clientAuth, valid until the job's end", async () => {
    const end = new Date(Date.now() + 2 * HOUR);
    const c = await ca.issueClientCertificate({ user: 'alice', uid: 2001, jobId: '4242', notAfter: end });
    const cert = new X509Certificate(c.certPem);
    assert.ok(cert.checkIssued(caCert));
    assert.ok(cert.verify(caCert.publicKey));
    assert.ok(!cert.verify(new X509Certificate((await NodeCertificateAuthority.loadOrCreate(newDir(), 'n1')).certPem).publicKey));
    assert.ok(cert.checkPrivateKey(createPrivateKey(c.keyPem)));
    assert.equal(cert.ca, false);
    assert.equal(cert.subject, 'OU=job-4242\nCN=alice');
    assert.equal(cert.issuer, 'CN=berth node CA n1');
    assert.deepEqual(cert.keyUsage, ['1.3.6.1.5.5.7.3.2']);
    assert.equal(keyUsage(c.certPem), x509.KeyUsageFlags.digitalSignature);
    assert.equal(cert.subjectAltName, 'URI:berth://job/4242, URI:berth://uid/2001');
    assert.equal(c.serial, cert.serialNumber);
    near(cert.validFrom, Date.now() - 5 * MINUTE, 5000, 'notBefore');
    near(cert.validTo, end.getTime(), 1000, 'notAfter');
    assert.equal(c.notAfter.getTime(), Date.parse(cert.validTo));
    assert.equal(c.notBefore.getTime(), Date.parse(cert.validFrom));
    assert.match(c.keyPem, /^-----BEGIN PRIVATE KEY-----\n/);
    const again = await ca.issueClientCertificate({ user: 'alice', uid: 2001, jobId: '4242', notAfter: end });
    assert.notEqual(again.serial, c.serial);
  });

  it('never outlives the CA', async () => {
    const c = await ca.issueClientCertificate({ user: 'alice', uid: 2001, jobId: '1', notAfter: new Date(Date.now() + 50 * YEAR) });
    assert.equal(new X509Certificate(c.certPem).validTo, caCert.validTo);
    const s = await ca.issueServerCertificate({ commonName: 'n1', days: 365 * 40 });
    assert.equal(new X509Certificate(s.certPem).validTo, caCert.validTo);
  });

  it('refuses requests it must not sign, saying why', async () => {
    const ok = { user: 'alice', uid: 2001, jobId: '5', notAfter: new Date(Date.now() + HOUR) };
    await assert.rejects(ca.issueClientCertificate({ ...ok, notAfter: new Date(Date.now() - MINUTE) }), /is already past; a certificate would be born expired/);
    await assert.rejects(ca.issueClientCertificate({ ...ok, uid: 0 }), /uid 0 is not allowed; berth never gives root/);
    await assert.rejects(ca.issueClientCertificate({ ...ok, user: 'alice,OU=job-1' }), /user name 'alice,OU=job-1' cannot be a certificate CN/);
    await assert.rejects(ca.issueClientCertificate({ ...ok, jobId: '5_1' }), /'5_1' is not a Slurm job id/);
    await assert.rejects(ca.issueClientCertificate({ ...ok, notAfter: new Date('nonsense') }), /not a valid date/);
    await assert.rejects(ca.issueServerCertificate({ commonName: 'n1', ipAddresses: ['127.0.0.300'], days: 1 }), /'127\.0\.0\.300' is not an IP address/);
  });

  it("dockerd's server certificate: serverAuth for localhost and 127.0.0.1 plus what it is given", async () => {
    const s = await ca.issueServerCertificate({ commonName: 'n1', dnsNames: ['n1.cluster'], ipAddresses: ['::1'], days: 30 });
    const cert = new X509Certificate(s.certPem);
    assert.ok(cert.checkIssued(caCert));
    assert.ok(cert.verify(caCert.publicKey));
    assert.ok(cert.checkPrivateKey(createPrivateKey(s.keyPem)));
    assert.equal(cert.ca, false);
    assert.equal(cert.subject, 'CN=n1');
    assert.deepEqual(cert.keyUsage, ['1.3.6.1.5.5.7.3.1']);
    assert.equal(cert.checkHost('localhost'), 'localhost');
    assert.equal(cert.checkHost('n1.cluster'), 'n1.cluster');
    assert.equal(cert.checkIP('127.0.0.1'), '127.0.0.1');
    assert.equal(cert.checkIP('::1'), '::1');
    near(cert.validTo, Date.now() + 30 * 24 * HOUR, 5000, 'server notAfter');
    assert.equal(parseJobFromCertificate(s.certPem), undefined, 'a server certificate names no job');
  });
});

describe('reading the job back from a certificate', async () => {
  const ca = await NodeCertificateAuthority.loadOrCreate(newDir(), 'n1');
  const c = await ca.issueClientCertificate({ user: 'bob.smith@lab', uid: 2002, jobId: '31337', notAfter: new Date(Date.now() + HOUR) });
  const der = new X509Certificate(c.certPem).raw;
  const want = { user: 'bob.smith@lab', jobId: '31337', uid: 2002 };

  it('round-trips from PEM, from what dockerd sends (base64 of the PEM), from DER and from a chain', () => {
    assert.deepEqual(parseJobFromCertificate(c.certPem), want);
    assert.deepEqual(parseJobFromCertificate(Buffer.from(c.certPem).toString('base64')), want);
    assert.deepEqual(parseJobFromCertificate(der.toString('base64')), want);
    assert.deepEqual(parseJobFromCertificate(der), want);
    assert.deepEqual(parseJobFromCertificate(c.certPem + ca.certPem), want);
  });

  it('reads the identity of the AuthZReq JSON as dockerd encodes it', () => {
    // Go marshals each peer certificate as the []byte of its PEM encoding: base64 of the PEM text
    const body = JSON.stringify({ User: 'bob.smith@lab', UserAuthNMethod: 'TLS', RequestPeerCertificates: [Buffer.from(c.certPem).toString('base64')] });
    const sent = (JSON.parse(body) as { RequestPeerCertificates: string[] }).RequestPeerCertificates[0]!;
    assert.deepEqual(parseJobFromCertificate(sent), want);
    assert.deepEqual(parseJobFromCertificate(Buffer.from(sent, 'base64').toString('utf8')), want);
  });

  it('is undefined for what is not a berth job certificate', async () => {
    assert.equal(parseJobFromCertificate(ca.certPem), undefined);
    assert.equal(parseJobFromCertificate(''), undefined);
    assert.equal(parseJobFromCertificate('not a certificate'), undefined);
    assert.equal(parseJobFromCertificate('-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n'), undefined);
    // right shape, but the OU and the SAN disagree about the job
    const keys = (await webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
    const forged = await x509.X509CertificateGenerator.createSelfSigned({
      name: [{ OU: ['job-1'] }, { CN: ['alice'] }], keys, signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
      extensions: [new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.clientAuth]), new x509.SubjectAlternativeNameExtension([{ type: 'url', value: 'berth://job/2' }])],
    }, webcrypto as webcrypto.Crypto);
    assert.equal(parseJobFromCertificate(forged.toString('pem')), undefined);
    assert.ok(readCertificate(forged.toString('pem')));
  });

  it('verifyJobCertificate also wants this CA as issuer and the certificate valid now', async () => {
    assert.deepEqual(ca.verifyJobCertificate(c.certPem), want);
    const foreign = await NodeCertificateAuthority.loadOrCreate(newDir(), 'n1');
    const theirs = await foreign.issueClientCertificate({ user: 'bob.smith@lab', uid: 2002, jobId: '31337', notAfter: new Date(Date.now() + HOUR) });
    assert.deepEqual(parseJobFromCertificate(theirs.certPem), want, 'parse alone does not check the issuer');
    assert.equal(ca.verifyJobCertificate(theirs.certPem), undefined);
    const later = await NodeCertificateAuthority.loadOrCreate(ca.dir, 'n1', { now: () => new Date(Date.now() + 2 * HOUR) });
    assert.equal(later.verifyJobCertificate(c.certPem), undefined, 'expired at the job end');
  });
});
