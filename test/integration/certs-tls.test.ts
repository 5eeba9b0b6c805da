// The node CA's certificates in real TLS handshakes: Node's tls server on 127.0.0.1 (what
// dockerd's --tlsverify does, and what the CN/OU look like on the other side), then, where
// dockerd is installed, a throwaway dockerd of the test's own (loopback only, no bridge, no
// iptables) that the docker CLI reaches with a job bundle and cannot reach with a foreign or
// expired certificate.
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { chmodSync, chownSync, closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import tls from 'node:tls';
import { removeJobClientBundle, writeJobClientBundle } from '../../services/agent/certs/job-bundle';
import { NodeCertificateAuthority, type IssuedCertificate } from '../../services/agent/certs/node-ca';

const HOUR = 3_600_000;
const DOCKERD = '/usr/sbin/dockerd';
const USER = { name: 'alice', uid: 2001, gid: 2001 };

interface Pki {
  dir: string;
  ca: NodeCertificateAuthority;
  server: IssuedCertificate;
  client: IssuedCertificate;
  foreign: IssuedCertificate;
  expired: IssuedCertificate;
}

async function makePki(): Promise<Pki> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'berth-certs-itest-'));
  try {
    return await issueAll(dir);
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}

async function issueAll(dir: string): Promise<Pki> {
  // the CA is made three hours ago; seen through a clock two hours behind, it signs a
  // certificate that has since expired
  const pastCa = await NodeCertificateAuthority.loadOrCreate(path.join(dir, 'ca'), 'itest', { now: () => new Date(Date.now() - 3 * HOUR) });
  const ca = await NodeCertificateAuthority.loadOrCreate(path.join(dir, 'ca'), 'itest');
  const job = { user: USER.name, uid: USER.uid, jobId: '4242', notAfter: new Date(Date.now() + HOUR) };
  const foreignCa = await NodeCertificateAuthority.loadOrCreate(path.join(dir, 'foreign-ca'), 'itest');
  return {
    dir,
    ca,
    server: await ca.issueServerCertificate({ commonName: 'itest', days: 1 }),
    client: await ca.issueClientCertificate(job),
    foreign: await foreignCa.issueClientCertificate(job),
    expired: await pastCa.issueClientCertificate({ ...job, notAfter: new Date(Date.now() - HOUR) }),
  };
}

type Outcome = { ok: true; body: string } | { ok: false; error: string };

/** Connects with a client certificate and reads what the server answers, or how it failed. */
function handshake(port: number, caPem: string, client: IssuedCertificate): Promise<Outcome> {
  return new Promise((resolve) => {
    let body = '';
    const socket = tls.connect({ host: '127.0.0.1', port, ca: caPem, cert: client.certPem, key: client.keyPem, timeout: 5000 });
    socket.setEncoding('utf8');
    socket.on('data', (d: string) => (body += d));
    socket.on('end', () => resolve(body ? { ok: true, body } : { ok: false, error: 'closed without an answer' }));
    socket.on('timeout', () => socket.destroy(new Error('timed out')));
    socket.on('error', (err) => resolve({ ok: false, error: err.message }));
  });
}

describe('node CA certificates in a TLS handshake', { timeout: 20_000 }, () => {
  let pki: Pki;
  // strict: what dockerd does; lenient: lets every client in and says what verification found,
  // so that a refusal is known to be for the reason the test means
  const servers: { strict?: tls.Server; lenient?: tls.Server } = {};
  const ports = { strict: 0, lenient: 0 };

  before(async () => {
    pki = await makePki();
    for (const kind of ['strict', 'lenient'] as const) {
      const server = tls.createServer({
        key: pki.server.keyPem, cert: pki.server.certPem, ca: pki.ca.certPem, requestCert: true, rejectUnauthorized: kind === 'strict',
      }, (socket) => {
        const peer = socket.getPeerCertificate();
        socket.end(JSON.stringify({ authorized: socket.authorized, error: socket.authorizationError ?? null, CN: peer.subject?.CN, OU: peer.subject?.OU, SAN: peer.subjectaltname }));
      });
      server.listen(0, '127.0.0.1');
      await once(server, 'listening');
      servers[kind] = server;
      ports[kind] = (server.address() as net.AddressInfo).port;
    }
  });
  after(() => {
    servers.strict?.close();
    servers.lenient?.close();
    if (pki) rmSync(pki.dir, { recursive: true, force: true });
  });

  it("lets a job's client certificate in; the server sees the user as CN and the job as OU", async () => {
    const r = await handshake(ports.strict, pki.ca.certPem, pki.client);
    assert.ok(r.ok, !r.ok ? r.error : '');
    assert.deepEqual(JSON.parse(r.body), { authorized: true, error: null, CN: 'alice', OU: 'job-4242', SAN: 'URI:berth://job/4242, URI:berth://uid/2001' });
  });

  it('refuses a client certificate from another CA', async () => {
    const r = await handshake(ports.strict, pki.ca.certPem, pki.foreign);
    assert.equal(r.ok, false, 'the strict server answered');
    const why = await handshake(ports.lenient, pki.ca.certPem, pki.foreign);
    assert.ok(why.ok, !why.ok ? why.error : '');
    assert.match(JSON.parse(why.body).error, /^UNABLE_TO_VERIFY_LEAF_SIGNATURE|UNABLE_TO_GET_ISSUER_CERT/);
  });

  it('refuses a client certificate past its notAfter', async () => {
    const r = await handshake(ports.strict, pki.ca.certPem, pki.expired);
    assert.equal(r.ok, false, 'the strict server answered');
    const why = await handshake(ports.lenient, pki.ca.certPem, pki.expired);
    assert.ok(why.ok, !why.ok ? why.error : '');
    assert.deepEqual(JSON.parse(why.body), { authorized: false, error: 'CERT_HAS_EXPIRED', CN: 'alice', OU: 'job-4242', SAN: 'URI:berth://job/4242, URI:berth://uid/2001' });
  });
});

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

function ping(socketPath: string): Promise<boolean> {
  return new Promise((resolve) => {
    const req = http.get({ socketPath, path: '/_ping', timeout: 1000 }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(false));
  });
}

const dockerdSkip = !existsSync(DOCKERD) ? `${DOCKERD} is not installed`
  : process.geteuid?.() !== 0 ? 'dockerd needs root'
  : spawnSync('docker', ['--version']).status !== 0 ? 'no docker CLI'
  : false;

describe('the docker CLI against a dockerd that trusts the node CA', { skip: dockerdSkip, timeout: 60_000 }, () => {
  let pki: Pki;
  let base: string;
  let daemon: ChildProcess | undefined;
  let host: string;
  let logFile: string;
  const bundles = { job: '', foreign: '', expired: '' };
  let dockerConfig: string;

  before(async () => {
    pki = await makePki();
    base = mkdtempSync('/tmp/berth-dkd-'); // short: containerd's socket path lives under exec-root
    chmodSync(base, 0o711); // the job user passes through to the bundles, reads nothing else
    const tlsDir = path.join(base, 'tls');
    mkdirSync(tlsDir, { mode: 0o700 });
    writeFileSync(path.join(tlsDir, 'ca.pem'), pki.ca.certPem);
    writeFileSync(path.join(tlsDir, 'server.pem'), pki.server.certPem);
    writeFileSync(path.join(tlsDir, 'server-key.pem'), pki.server.keyPem, { mode: 0o600 });
    writeFileSync(path.join(base, 'daemon.json'), '{}\n'); // nothing from /etc/docker/daemon.json

    const bundleParent = path.join(base, 'jobs');
    mkdirSync(bundleParent, { mode: 0o755 });
    bundles.job = path.join(bundleParent, '4242');
    bundles.foreign = path.join(bundleParent, 'foreign');
    bundles.expired = path.join(bundleParent, 'expired');
    writeJobClientBundle(bundles.job, { caPem: pki.ca.certPem, ...pki.client }, USER);
    writeJobClientBundle(bundles.foreign, { caPem: pki.ca.certPem, ...pki.foreign }, USER);
    writeJobClientBundle(bundles.expired, { caPem: pki.ca.certPem, ...pki.expired }, USER);
    dockerConfig = path.join(base, 'docker-config'); // the CLI's config: not root's ~/.docker
    mkdirSync(dockerConfig, { mode: 0o700 });
    chownSync(dockerConfig, USER.uid, USER.gid);

    const port = await freePort();
    host = `tcp://127.0.0.1:${port}`;
    const sock = path.join(base, 'docker.sock');
    logFile = path.join(base, 'dockerd.log');
    const log = openSync(logFile, 'w');
    daemon = spawn(DOCKERD, [
      '--config-file', path.join(base, 'daemon.json'),
      '--host', host, '--host', `unix://${sock}`,
      '--tlsverify', '--tlscacert', path.join(tlsDir, 'ca.pem'), '--tlscert', path.join(tlsDir, 'server.pem'), '--tlskey', path.join(tlsDir, 'server-key.pem'),
      '--data-root', path.join(base, 'data'), '--exec-root', path.join(base, 'exec'), '--pidfile', path.join(base, 'docker.pid'),
      '--bridge=none', '--iptables=false', '--ip-masq=false',
      '--containerd-namespace', 'berth-certs-itest', '--containerd-plugins-namespace', 'berth-certs-itest-plugins',
    ], { stdio: ['ignore', log, log] });
    closeSync(log);
    let exited: string | undefined;
    daemon.on('exit', (code, signal) => (exited = `exited (${code ?? signal})`));
    process.once('exit', stopOnExit); // a test run that dies leaves no dockerd behind
    const deadline = Date.now() + 15_000;
    while (!(await ping(sock))) {
      if (exited || Date.now() > deadline) {
        throw new Error(`throwaway dockerd ${exited ?? 'did not answer /_ping within 15 s'}; its log:\n${readFileSync(logFile, 'utf8').slice(-2000)}`);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  });

  const stopOnExit = () => daemon?.kill('SIGKILL');

  after(async () => {
    process.off('exit', stopOnExit);
    if (daemon && daemon.exitCode === null && daemon.signalCode === null) {
      const gone = once(daemon, 'exit');
      daemon.kill('SIGTERM');
      const timer = setTimeout(() => daemon?.kill('SIGKILL'), 10_000);
      await gone;
      clearTimeout(timer);
    }
    for (const b of Object.values(bundles)) if (b) removeJobClientBundle(b);
    if (base) rmSync(base, { recursive: true, force: true });
    if (pki) rmSync(pki.dir, { recursive: true, force: true });
  });

  /** The docker CLI as the job's user, set up the way a job would be (DOCKER_CERT_PATH). */
  const dockerAsUser = (bundle: string, args: string[]) =>
    spawnSync('docker', args, {
      uid: USER.uid, gid: USER.gid, encoding: 'utf8', timeout: 15_000,
      env: { PATH: process.env.PATH, HOME: dockerConfig, DOCKER_CONFIG: dockerConfig, DOCKER_HOST: host, DOCKER_TLS_VERIFY: '1', DOCKER_CERT_PATH: bundle },
    });

  it("works with the job's bundle in DOCKER_CERT_PATH, as the job's user", () => {
    const r = dockerAsUser(bundles.job, ['version', '--format', '{{.Server.APIVersion}}']);
    assert.equal(r.status, 0, `docker version failed: ${r.stderr}`);
    assert.match(r.stdout.trim(), /^1\.\d+$/);
  });

  it('works with the files given as flags too', () => {
    const r = spawnSync('docker', [
      '--tlsverify', '-H', host, '--tlscacert', path.join(bundles.job, 'ca.pem'), '--tlscert', path.join(bundles.job, 'cert.pem'),
      '--tlskey', path.join(bundles.job, 'key.pem'), 'version', '--format', '{{.Server.APIVersion}}',
    ], { encoding: 'utf8', timeout: 15_000, env: { PATH: process.env.PATH, DOCKER_CONFIG: dockerConfig } });
    assert.equal(r.status, 0, `docker version failed: ${r.stderr}`);
  });

  it('fails with a certificate from another CA', () => {
    const r = dockerAsUser(bundles.foreign, ['version', '--format', '{{.Server.APIVersion}}']);
    assert.notEqual(r.status, 0);
    assert.equal(r.stdout.trim(), '', 'no server answer');
    // refused in the handshake: Go reports the alert or, as often, the reset that follows it
    assert.match(r.stderr, /tls|certificate|connection reset|EOF/i);
  });

  it('fails with an expired certificate', () => {
    const r = dockerAsUser(bundles.expired, ['version', '--format', '{{.Server.APIVersion}}']);
    assert.notEqual(r.status, 0);
    assert.equal(r.stdout.trim(), '', 'no server answer');
    assert.match(r.stderr, /tls|certificate|connection reset|EOF/i);
  });

  it('fails without a client certificate', () => {
    const r = spawnSync('docker', ['-H', host, '--tlsverify', '--tlscacert', path.join(bundles.job, 'ca.pem'), 'version', '--format', '{{.Server.APIVersion}}'],
      { encoding: 'utf8', timeout: 15_000, env: { PATH: process.env.PATH, DOCKER_CONFIG: dockerConfig } });
    assert.notEqual(r.status, 0);
    assert.equal(r.stdout.trim(), '', 'no server answer');
  });
});
