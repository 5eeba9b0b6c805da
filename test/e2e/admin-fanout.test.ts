// Admin commands across the sandbox's nodes through Slurm: berth status over n[1-3] with one
// berthd stopped (restarted exactly as scripts/sandbox.d/berthd.sh starts it), a drained n2
// refusing a container job at the prolog with node, reason and `berth resume` in slurmd's log,
// the job accepted after resume; and berth status over the sandbox's mutual-TLS listener.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { node, sandbox } from '../support/stack';
import { containersOfJob, jobDir, jobIdFrom, jobState, resumeNodes, run, slurmdLog, waitFor } from '../support/slurm';
import { alive } from '../support/berthd';

const BERTHD = '/usr/local/sbin/berthd';
const pidFile = (n: string) => `/run/berth-sandbox/${n}/berthd.pid`;

function stopBerthd(n: string): void {
  const pid = Number(readFileSync(pidFile(n), 'utf8').trim());
  assert.ok(alive(pid), `sandbox berthd ${n} (pid ${pid}) is running`);
  process.kill(pid, 'SIGTERM');
  waitFor(`berthd ${n} (pid ${pid}) gone`, () => !alive(pid) || undefined, 20_000);
}

/** as start_bg in scripts/sandbox.d/common.sh: own session (detached = setsid), in /, output appended to berthd.out, pid recorded */
function startBerthd(n: string): void {
  const nd = node(n);
  const out = openSync(nd.logs.berthdOutput!, 'a');
  const child = spawn(BERTHD, ['--config', nd.berthdConfig], { cwd: '/', stdio: ['ignore', out, out], detached: true });
  closeSync(out);
  child.unref();
  run('sh', ['-c', `echo ${child.pid} > ${pidFile(n)}`]);
  waitFor(`berthd ${n} serving`, () => run('berth', ['status', '--node', n, '--json']).code === 0 || undefined, 30_000);
}

interface FleetDoc {
  asked: number;
  answered: number;
  nodes: { node: string; ok: boolean; result?: { state: string; drain: { drained: boolean; reason: string } }; error?: { code: string; message: string } }[];
}

describe('berth admin commands across the sandbox', { timeout: 300_000 }, () => {
  const cancel: string[] = [];
  let stopped: string | undefined;
  after(() => {
    for (const id of cancel) run('scancel', [id]);
    run('berth', ['resume', '--nodes', 'n[1-3]']);
    if (stopped && !existsSync(node(stopped).berthdAdminSocket)) startBerthd(stopped);
    resumeNodes();
  });

  it('reports n[1-3] with one berthd stopped: the others answer, the stopped one is an error entry, exit 3', () => {
    sandbox();
    stopped = 'n3';
    stopBerthd('n3');
    const table = run('berth', ['status', '--nodes', 'n[1-3]']);
    assert.equal(table.code, 3, table.stdout + table.stderr);
    assert.match(table.stdout, /^n1 +serving /m);
    assert.match(table.stdout, /^n2 +serving /m);
    assert.doesNotMatch(table.stdout, /^n3 /m);
    assert.match(table.stderr, /^berth status: n3: berthd on n3 is not reachable at \/run\/berth\/n3\/admin\.sock/m);
    const json = run('berth', ['status', '--nodes', 'n[1-3]', '--json']);
    assert.equal(json.code, 3);
    const doc = JSON.parse(json.stdout) as FleetDoc;
    assert.deepEqual(doc.nodes.map((n) => [n.node, n.ok, n.error?.code ?? '']), [['n1', true, ''], ['n2', true, ''], ['n3', false, 'UNREACHABLE']]);
    startBerthd('n3');
    stopped = undefined;
    const all = run('berth', ['status', '--nodes', 'n[1-3]']);
    assert.equal(all.code, 0, all.stderr);
  });

  it('refuses a container job on a drained n2 at the prolog, naming node, reason and berth resume; accepts it after resume', () => {
    const reason = `e2e maintenance ${Date.now()}`;
    const drained = run('berth', ['drain', '--nodes', 'n2', '--reason', reason]);
    assert.equal(drained.code, 0, drained.stderr);
    const dir = jobDir('alice', 'drained');
    const out = path.join(dir, 'out.txt');
    const sub = run('sbatch', ['-N1', '-w', 'n2', '--no-container-batch', `--container-image=${sandbox().demoImage}`, '-o', out, '--wrap', 'srun berth exec -- cat /etc/berth-demo-release'], { user: 'alice', cwd: dir });
    assert.equal(sub.code, 0, sub.stderr);
    const jobId = jobIdFrom(sub.stdout);
    cancel.push(jobId);
    const line = waitFor(`slurmd n2 logs the refused prolog of job ${jobId}`, () => slurmdLog('n2').split('\n').find((l) => l.includes(`job ${jobId} on n2`) && l.includes('drained')), 90_000);
    assert.match(line, new RegExp(`node n2 is drained for container jobs since \\S+ \\(reason: ${reason}\\); job ${jobId} was not started here\\. An admin ends the drain with: berth resume --nodes n2`));
    assert.deepEqual(containersOfJob('n2', jobId), [], 'no container was made on the drained node');
    const detail = waitFor(`job ${jobId} requeued and held`, () => {
      const d = run('scontrol', ['show', 'job', '-o', jobId]).stdout;
      return /JobState=PENDING/.test(d) && /Reason=launch_failed_requeued_held|Reason=JobHeldAdmin/.test(d) ? d : undefined;
    }, 60_000);
    assert.match(detail, /Requeue=1|Restarts=[1-9]/);
    const status = JSON.parse(run('berth', ['status', '--node', 'n2', '--json']).stdout) as FleetDoc;
    assert.equal(status.nodes[0]!.result!.state, 'AGENT_STATE_DRAINING');
    assert.equal(status.nodes[0]!.result!.drain.reason, reason);

    const resumed = run('berth', ['resume', '--nodes', 'n2']);
    assert.equal(resumed.code, 0, resumed.stderr);
    resumeNodes(); // Slurm drained n2 itself after the failed prolog (reason "Prolog error")
    // the held job would wait out Slurm's requeue delay (credential lifetime, ~2 min): a new job shows n2 accepts again
    run('scancel', [jobId]);
    const again = run('sbatch', ['-N1', '-w', 'n2', '--wait', '--no-container-batch', `--container-image=${sandbox().demoImage}`, '-o', out, '--wrap', 'srun berth exec -- cat /etc/berth-demo-release'], { user: 'alice', cwd: dir, timeoutMs: 120_000 });
    assert.equal(again.code, 0, again.stderr);
    assert.match(readFileSync(out, 'utf8'), /berth demo image 1\.0/);
  });

  it('answers berth status over the mutual-TLS listener for the read identity, and refuses it a drain', () => {
    const cfg = JSON.parse(readFileSync(node('n1').berthdConfig, 'utf8')) as { remoteAccess: { listen: string; caFile: string } };
    const ca = path.dirname(cfg.remoteAccess.caFile);
    const tls = (who: string) => ['--tls-ca', cfg.remoteAccess.caFile, '--tls-cert', path.join(ca, `${who}.pem`), '--tls-key', path.join(ca, `${who}.key`)];
    const ok = run('berth', ['status', '--nodes', cfg.remoteAccess.listen, ...tls('read'), '--json']);
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal((JSON.parse(ok.stdout) as FleetDoc).nodes[0]!.ok, true);
    const denied = run('berth', ['drain', '--nodes', cfg.remoteAccess.listen, '--reason', 'x', ...tls('read')]);
    assert.equal(denied.code, 1);
    assert.match(denied.stderr, /SetDrain needs role 'admin'; identity 'sandbox-read'/);
  });
});
