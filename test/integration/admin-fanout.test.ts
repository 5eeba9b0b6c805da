// The admin commands against real berthd processes of the test's own (fa1, fa2, fa3; no
// authz) on one real dockerd: fan-out with a missing and a hung node, the JSON document and
// exit statuses, drain refusing the prolog hook and surviving a restart, resume, and remote
// access over mutual TLS (untrusted certificate refused at the handshake, roles enforced).
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { SERVICE_NAME } from '../../services/shared/proto-names';
import { serviceDefinition } from '../../services/shared/service-definition';
import { BERTH, BERTHD, type OwnAgents, startOwnAgents } from '../support/own-agents';
import { SitePki } from '../support/site-pki';

interface Run { code: number; stdout: string; stderr: string }

function berth(args: string[], env: Record<string, string> = {}): Promise<Run> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BERTH, ...args], { env: { ...process.env, ...env }, timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, stdout, stderr });
    });
  });
}

async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise((r) => s.close(r));
  return port;
}

interface FleetDoc {
  command: string;
  asked: number;
  answered: number;
  nodes: ({ node: string; ok: true; millis: number; result: Record<string, unknown> } | { node: string; ok: false; millis: number; error: { code: string; message: string } })[];
}

describe('admin fan-out over real agents', { timeout: 180_000 }, () => {
  let agents: OwnAgents;
  let env: Record<string, string>;
  let hung: net.Server;
  const held: net.Socket[] = [];
  let pki: SitePki;
  let tlsPort: number;

  before(async () => {
    tlsPort = await freePort();
    const pkiDir = path.join('/tmp', `berth-fanout-pki-${process.pid}`);
    pki = new SitePki(pkiDir);
    const server = pki.server('fa3-server', 'fa3');
    agents = await startOwnAgents(['fa1', 'fa2', 'fa3'], (name) => (name === 'fa3' ? {
      remoteAccess: { listen: `127.0.0.1:${tlsPort}`, certFile: server.cert, keyFile: server.key, caFile: pki.ca, clients: { 'ops-ro': ['read'], 'ops-admin': ['admin'] } },
    } : {}));
    env = { BERTH_RUN_DIR: agents.runDir };
    // a node whose socket accepts connections and never says a word
    mkdirSync(path.join(agents.runDir, 'fahang'), { recursive: true });
    hung = net.createServer((s) => void held.push(s));
    await new Promise<void>((r) => hung.listen(path.join(agents.runDir, 'fahang', 'admin.sock'), r));
  });

  after(async () => {
    for (const s of held) s.destroy();
    await new Promise((r) => hung?.close(r));
    await agents?.stop();
    if (pki) rmSync(pki.dir, { recursive: true, force: true });
  });

  it('answers for every node that answers, reports the missing and the hung one on stderr, and exits 3', async () => {
    const began = Date.now();
    const r = await berth(['status', '--nodes', 'fa[1-3],fa9,fahang', '--timeout', '1.5'], env);
    const took = Date.now() - began;
    assert.equal(r.code, 3, r.stdout + r.stderr);
    const rows = r.stdout.trim().split('\n');
    assert.match(rows[0]!, /^NODE +STATE +VERSION +UPTIME +JOBS +CONTAINERS +IMAGES +CACHE +DISK +DOCKERD +RULES +CHECK +REASON$/);
    for (const n of ['fa1', 'fa2', 'fa3']) assert.match(r.stdout, new RegExp(`^${n} +serving +0\\.1\\.0 +\\d+s +0 +\\d+ +\\d+ +[0-9.]+ MB +[0-9.]+% +ok`, 'm'));
    assert.match(r.stderr, /^berth status: fa9: berthd on fa9 is not reachable at .*fa9\/admin\.sock/m);
    assert.match(r.stderr, /^berth status: fahang: no answer from fahang within 1\.5 s \(--timeout\)$/m);
    assert.match(r.stderr, /^berth status: 3 of 5 node\(s\) answered$/m);
    assert.ok(took < 8000, `the hung node was given up after its timeout (${took} ms in all)`);
  });

  it('prints one JSON document with an error entry per node that did not answer', async () => {
    const r = await berth(['status', '--nodes', 'fa1,fa9,fahang', '--timeout', '1', '--json'], env);
    assert.equal(r.code, 3, r.stderr);
    const doc = JSON.parse(r.stdout) as FleetDoc;
    assert.equal(doc.command, 'status');
    assert.equal(doc.asked, 3);
    assert.equal(doc.answered, 1);
    assert.deepEqual(doc.nodes.map((n) => [n.node, n.ok, n.ok ? '' : n.error.code]), [['fa1', true, ''], ['fa9', false, 'UNREACHABLE'], ['fahang', false, 'TIMEOUT']]);
    const fa1 = doc.nodes[0] as Extract<FleetDoc['nodes'][number], { ok: true }>;
    assert.equal(fa1.result.node, 'fa1');
    assert.equal(fa1.result.state, 'AGENT_STATE_SERVING');
    assert.equal(fa1.result.dockerdReachable, true);
    assert.equal(typeof fa1.result.diskUsagePercent, 'number');
    assert.equal(r.stderr, '', 'with --json, errors are entries in the document');
  });

  it('exits 1 when no node answers, and 2 for an empty host list', async () => {
    const none = await berth(['jobs', '--nodes', 'fa[8-9]'], env);
    assert.equal(none.code, 1);
    assert.match(none.stderr, /berth jobs: 0 of 2 node\(s\) answered/);
    const empty = await berth(['status', '--nodes', ','], env);
    assert.equal(empty.code, 2);
    assert.match(empty.stderr, /no nodes in ',': give --nodes NODE or a Slurm host list/);
  });

  it('lists jobs, containers and images with a NODE column across the nodes', async () => {
    for (const cmd of ['jobs', 'containers', 'images']) {
      const r = await berth([cmd, '--nodes', 'fa[1-2]', '--json'], env);
      assert.equal(r.code, 0, `${cmd}: ${r.stderr}`);
      const doc = JSON.parse(r.stdout) as FleetDoc;
      assert.deepEqual(doc.nodes.map((n) => n.node), ['fa1', 'fa2']);
      const key = cmd === 'images' ? 'images' : cmd;
      for (const n of doc.nodes) assert.ok(n.ok && Array.isArray(n.result[key]), `${cmd} on ${n.node}: ${JSON.stringify(n)}`);
      const human = await berth([cmd, '--node', 'fa1'], env);
      assert.equal(human.code, 0, human.stderr);
      assert.match(human.stdout, /^NODE /);
    }
  });

  it('drains a node: the prolog hook is refused naming node, reason and berth resume; it survives a restart; resume undoes it', async () => {
    const drained = await berth(['drain', '--nodes', 'fa[1-2]', '--reason', 'swapping disks, back at 14:00'], env);
    assert.equal(drained.code, 0, drained.stderr);
    assert.match(drained.stdout, /^fa1 +drained +yes +\S+ +root +swapping disks, back at 14:00$/m);
    const hookEnv = {
      ...env, SLURM_JOB_ID: '880001', SLURM_JOB_UID: '2001', SLURM_JOB_GID: '2001', SLURM_JOB_USER: 'alice', SLURMD_NODENAME: 'fa1',
      SPANK_BERTH_CONTAINER_IMAGE: '127.0.0.1:5000/berth/demo:1.0', SLURM_JOB_WORK_DIR: '/tmp',
    };
    const refused = await berth(['hook', 'prolog'], hookEnv);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /berth prolog: job 880001 on fa1, image '127\.0\.0\.1:5000\/berth\/demo:1\.0': node fa1 is drained for container jobs since \S+ \(reason: swapping disks, back at 14:00\); job 880001 was not started here\. An admin ends the drain with: berth resume --nodes fa1/);

    const fa1 = agents.agents[0]!;
    await agents.stopOne(fa1);
    await agents.start(fa1);
    const st = JSON.parse((await berth(['status', '--node', 'fa1', '--json'], env)).stdout) as FleetDoc;
    const res = (st.nodes[0] as Extract<FleetDoc['nodes'][number], { ok: true }>).result as { state: string; drain: { drained: boolean; reason: string; by: string } };
    assert.equal(res.state, 'AGENT_STATE_DRAINING', 'still drained after a restart');
    assert.deepEqual([res.drain.drained, res.drain.reason, res.drain.by], [true, 'swapping disks, back at 14:00', 'root']);
    const human = await berth(['status', '--node', 'fa1'], env);
    assert.match(human.stdout, /^fa1 +draining .*drained: swapping disks, back at 14:00 \(root, /m);

    const resumed = await berth(['resume', '--nodes', 'fa[1-2]'], env);
    assert.equal(resumed.code, 0, resumed.stderr);
    assert.match(resumed.stdout, /^fa1 +accepting +yes/m);
    const again = await berth(['resume', '--nodes', 'fa1'], env);
    assert.match(again.stdout, /^fa1 +accepting +no/m, 'resuming a node that is not drained changes nothing');
    const accepted = await berth(['hook', 'prolog'], hookEnv);
    assert.doesNotMatch(accepted.stderr, /drained/);
    if (accepted.code === 0) await berth(['hook', 'epilog'], hookEnv);
    const noReason = await berth(['drain', '--nodes', 'fa1', '--reason', ' '], env);
    assert.equal(noReason.code, 2);
    assert.match(noReason.stderr, /needs a --reason/);
  });

  it('serves read and admin identities over mutual TLS by role, and refuses an untrusted certificate at the handshake', async () => {
    const ro = pki.client('ops-ro', 'ops-ro');
    const admin = pki.client('ops-admin', 'ops-admin');
    const nobody = pki.client('nobody', 'nobody');
    const rogue = new SitePki(path.join(pki.dir, 'rogue'), 'rogue-ca').client('rogue-admin', 'ops-admin');
    const target = `127.0.0.1:${tlsPort}`;
    const tls = (c: { cert: string; key: string }) => ['--tls-ca', pki.ca, '--tls-cert', c.cert, '--tls-key', c.key];

    const status = await berth(['status', '--nodes', target, ...tls(ro), '--json'], env);
    assert.equal(status.code, 0, status.stderr);
    assert.equal(((JSON.parse(status.stdout) as FleetDoc).nodes[0] as Extract<FleetDoc['nodes'][number], { ok: true }>).result.node, 'fa3');

    const denied = await berth(['drain', '--nodes', target, '--reason', 'x', ...tls(ro)], env);
    assert.equal(denied.code, 1);
    assert.match(denied.stderr, /SetDrain needs role 'admin'; identity 'ops-ro' has role\(s\) 'read'/);

    // --port and the BERTH_TLS_* variables instead of NODE:PORT and flags
    const drained = await berth(['drain', '--nodes', '127.0.0.1', '--port', String(tlsPort), '--reason', 'remote test'],
      { ...env, BERTH_TLS_CA: pki.ca, BERTH_TLS_CERT: admin.cert, BERTH_TLS_KEY: admin.key });
    assert.equal(drained.code, 0, drained.stderr);
    assert.match(drained.stdout, /drained +yes +\S+ +ops-admin +remote test/);
    assert.equal((await berth(['resume', '--nodes', target, ...tls(admin)], env)).code, 0);

    const unknown = await berth(['status', '--nodes', target, ...tls(nobody)], env);
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /names no client in berthd's remoteAccess\.clients/);

    const untrusted = await berth(['status', '--nodes', target, ...tls(rogue), '--json'], env);
    assert.equal(untrusted.code, 1);
    const entry = (JSON.parse(untrusted.stdout) as FleetDoc).nodes[0] as { ok: false; error: { code: string; message: string } };
    assert.equal(entry.error.code, 'UNREACHABLE');
    assert.match(entry.error.message, /berthd on 127\.0\.0\.1:\d+ is not reachable at .*does the site CA berthd trusts \(remoteAccess\.caFile\) sign --tls-cert/);
    // the refusal is the TLS handshake's: no byte of HTTP/2 reaches a certificate of another CA
    const handshake = (c: { cert: string; key: string }) => new Promise<string>((resolve) => {
      const sock = tlsConnect({ host: '127.0.0.1', port: tlsPort, maxVersion: 'TLSv1.2', servername: 'localhost', ALPNProtocols: ['h2'], ca: readFileSync(pki.ca), cert: readFileSync(c.cert), key: readFileSync(c.key) });
      sock.on('secureConnect', () => { sock.destroy(); resolve('established'); });
      sock.on('error', (err: NodeJS.ErrnoException) => resolve(`refused: ${err.code}`));
    });
    assert.equal(await handshake(ro), 'established');
    assert.match(await handshake(rogue), /^refused: /);

    const noTls = await berth(['status', '--nodes', target], env);
    assert.equal(noTls.code, 2);
    assert.match(noTls.stderr, /reaching berthd over TCP needs mutual TLS: give --tls-ca, --tls-cert, --tls-key/);
  });

  it('never serves the Slurm hooks over TCP, even to an admin identity', async () => {
    const admin = pki.client('ops-admin2', 'ops-admin');
    const Client = grpc.makeGenericClientConstructor(serviceDefinition(SERVICE_NAME), 'NodeAgentService');
    const client = new Client(`127.0.0.1:${tlsPort}`, grpc.credentials.createSsl(readFileSync(pki.ca), readFileSync(admin.key), readFileSync(admin.cert))) as unknown as grpc.Client & {
      JobPrologue: (req: object, cb: (err: grpc.ServiceError | null) => void) => void;
    };
    try {
      const err = await new Promise<grpc.ServiceError | null>((resolve) => client.JobPrologue({ jobId: '1', uid: 2001, gid: 2001, image: 'x' }, resolve));
      assert.equal(err?.code, grpc.status.PERMISSION_DENIED);
      assert.match(err!.details, /JobPrologue is not served over TCP/);
    } finally {
      client.close();
    }
  });

  it('refuses to start with a remoteAccess section it cannot use, saying which key is wrong (exit 2)', async () => {
    const dir = path.join(agents.dir, 'bad');
    mkdirSync(dir, { recursive: true });
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ listen: '127.0.0.1', certFile: '/x.pem', keyFile: '/x.key', caFile: '/ca.pem', clients: { a: ['read'] } }, /remoteAccess\.listen: must be HOST:PORT/],
      [{ listen: '127.0.0.1:7443', certFile: '/x.pem', keyFile: '/x.key', caFile: '/ca.pem', clients: { a: ['root'] } }, /remoteAccess\.clients\.a\.0: Invalid enum value\. Expected 'read' \| 'admin'/],
      [{ listen: '127.0.0.1:7443', certFile: path.join(dir, 'missing.pem'), keyFile: '/x.key', caFile: pki.ca, clients: { a: ['read'] } }, /remoteAccess\.certFile: cannot read .*missing\.pem: ENOENT/],
    ];
    for (const [remoteAccess, message] of cases) {
      const cfg = path.join(dir, 'berthd.json');
      writeFileSync(cfg, JSON.stringify({ node: 'fabad', runDir: path.join(dir, 'run'), stateDir: path.join(dir, 'state'), dockerHost: 'unix:///nonexistent.sock', remoteAccess }));
      const r = await new Promise<Run>((resolve) => execFile(process.execPath, [BERTHD, '--config', cfg], { timeout: 20_000 }, (err, stdout, stderr) => resolve({ code: (err?.code as number) ?? 0, stdout, stderr })));
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, /berthd: bad configuration:/);
      assert.match(r.stderr, message);
    }
  });
});
