// Accounting and metrics through the real 3-node Slurm: a 2-node container job, then
// `berth accounting --nodes n[1-3] --format json --job ID` has each node's job record and
// step records with the image digest and the container's CPU; a user sees only their own
// records; each node's /metrics shows the pull and the container start.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { describe, it } from 'node:test';
import { node, sandbox, uidOf } from '../support/stack';
import { containersOfJob, jobDir, jobIdFrom, run, waitFor, writeScript } from '../support/slurm';

type Rec = Record<string, unknown>;

/** GET over a fresh connection: the test blocks in spawnSync for seconds, and a pooled
 * keep-alive socket the server closed meanwhile would be reused ("other side closed") */
function get(address: string, urlPath: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    http.get(`http://${address}${urlPath}`, { agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    }).on('error', reject);
  });
}

async function scrape(nodeName: string): Promise<string> {
  const res = await get(node(nodeName).metricsAddress, '/metrics');
  assert.equal(res.status, 200, `GET /metrics on ${nodeName}`);
  return res.body;
}

function value(text: string, name: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${name}{`) || l.startsWith(`${name} `));
  return line === undefined ? 0 : Number(line.slice(line.lastIndexOf(' ') + 1));
}

describe('accounting and metrics of a 2-node container job', { timeout: 300_000 }, () => {
  it("accounts each node's share with steps and digest, and the nodes' metrics show the pull and the start", async () => {
    const image = sandbox().demoImage;
    const nodes = sandbox().nodes.map((n) => n.name);
    // a pull must happen: no container keeps the demo image, then remove it from every node
    for (const n of nodes) {
      const d = ['-H', `unix://${node(n).dockerSocket}`];
      waitFor(`no containers left on ${n}`, () => run('docker', [...d, 'ps', '-aq']).stdout.trim() === '' || undefined, 90_000);
      for (const id of run('docker', [...d, 'images', '-q', '--no-trunc', '--filter', 'reference=127.0.0.1:5000/berth/demo*']).stdout.split('\n').filter(Boolean)) {
        run('docker', [...d, 'rmi', '-f', id]);
      }
    }
    const before = new Map<string, string>();
    for (const n of nodes) before.set(n, await scrape(n));

    const dir = jobDir('alice', 'acct-metrics');
    const script = writeScript(dir, 'job.sh', [
      `srun berth exec -- sh -c 'i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done; echo "busy on $SLURMD_NODENAME"'`,
      `srun berth exec -- sh -c 'exit 0'`,
    ].join('\n'), 'alice');
    const sub = run('sbatch', ['-N2', '--wait', '--no-container-batch', `--container-image=${image}`, '-o', path.join(dir, 'out.txt'), script], { user: 'alice', cwd: dir, timeoutMs: 180_000 });
    const out = readFileSync(path.join(dir, 'out.txt'), 'utf8');
    assert.equal(sub.code, 0, `sbatch failed: ${sub.stderr}\n${out}`);
    const jobId = jobIdFrom(sub.stdout);
    assert.equal(out.split('\n').filter((l) => l.startsWith('busy on ')).length, 2, out);
    for (const n of nodes) waitFor(`no container of job ${jobId} left on ${n}`, () => containersOfJob(n, jobId).length === 0 || undefined);

    // as root: every node asked, the job's two nodes answer with its records
    const acct = run('berth', ['accounting', '--nodes', 'n[1-3]', '--format', 'json', '--job', jobId, '--since', '1h']);
    assert.equal(acct.code, 0, acct.stderr);
    const recs = JSON.parse(acct.stdout) as Rec[];
    const jobRecs = recs.filter((r) => r.RecordType === 'job');
    const ran = jobRecs.map((r) => String(r.NodeList)).sort();
    assert.equal(ran.length, 2, acct.stdout);
    assert.equal(new Set(ran).size, 2, 'one job record per node');
    const starts = recs.map((r) => String(r.Start));
    assert.deepEqual(starts, [...starts].sort((a, b) => Date.parse(a) - Date.parse(b)), 'sorted by start time');
    const digest = /^127\.0\.0\.1:5000\/berth\/demo@sha256:[a-f0-9]{64}$/;
    for (const n of ran) {
      const job = jobRecs.find((r) => r.NodeList === n)!;
      assert.equal(job.JobID, jobId);
      assert.equal(job.User, 'alice');
      assert.equal(job.UID, uidOf('alice'));
      assert.match(String(job.ImageDigest), digest);
      assert.equal(job.Registry, '127.0.0.1:5000');
      assert.equal(job.Pulled, true, `${n} pulled the image`);
      assert.ok(Number(job.PullBytes) > 0, `${n} pull bytes ${job.PullBytes}`);
      assert.ok(Number(job.StartLatencySeconds) > 0);
      assert.ok(Number(job.TotalCPUSeconds) > 0, `${n} CPU ${job.TotalCPUSeconds}`);
      assert.ok(Number(job.MaxRSSBytes) > 0, `${n} memory ${job.MaxRSSBytes}`);
      assert.equal(job.State, 'COMPLETED');
      assert.equal(job.ExitCode, '0:0');
      const steps = recs.filter((r) => r.RecordType === 'step' && r.NodeList === n);
      assert.deepEqual(steps.map((s) => s.StepID).sort(), ['0', '1'], `${n}: ${JSON.stringify(steps)}`);
      for (const s of steps) {
        assert.match(String(s.ImageDigest), digest);
        assert.equal(s.ExitCode, '0:0');
        assert.equal(s.State, 'COMPLETED');
      }
      assert.ok(Number(steps.find((s) => s.StepID === '0')!.TotalCPUSeconds) > 0, 'the busy step used CPU');
    }

    // CSV for the same job: a header and the same number of rows
    const csv = run('berth', ['accounting', '--nodes', 'n[1-3]', '--format', 'csv', '--job', jobId, '--since', '1h']);
    assert.equal(csv.code, 0, csv.stderr);
    assert.equal(csv.stdout.trim().split('\n').length, recs.length + 1);

    // users see their own records only (munge on the user socket)
    const mine = run('berth', ['accounting', '--nodes', 'n[1-3]', '--format', 'json', '--job', jobId, '--since', '1h'], { user: 'alice', env: { PATH: process.env.PATH ?? '/usr/bin:/bin' } });
    assert.equal(mine.code, 0, mine.stderr);
    assert.equal((JSON.parse(mine.stdout) as Rec[]).length, recs.length);
    const theirs = run('berth', ['accounting', '--nodes', 'n[1-3]', '--format', 'json', '--job', jobId, '--since', '1h'], { user: 'bob', env: { PATH: process.env.PATH ?? '/usr/bin:/bin' } });
    assert.equal(theirs.code, 0, theirs.stderr);
    assert.deepEqual(JSON.parse(theirs.stdout), [], "bob sees none of alice's records");

    // a node that does not exist: reported, the others still printed, exit 3 (partial)
    const partial = run('berth', ['accounting', '--nodes', 'n[1-3],n9', '--format', 'json', '--job', jobId, '--since', '1h']);
    assert.equal(partial.code, 3);
    assert.match(partial.stderr, /n9: berthd on n9 is not reachable/);
    assert.equal((JSON.parse(partial.stdout) as Rec[]).length, recs.length);

    // bad input
    const bad = run('berth', ['accounting', '--nodes', 'n1', '--since', 'yesterdayish']);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /--since 'yesterdayish' is not a time berth understands; use an ISO 8601/);

    // metrics: each of the job's nodes pulled once and started a container
    for (const n of ran) {
      const now = await scrape(n);
      const was = before.get(n)!;
      const delta = (name: string) => value(now, name) - value(was, name);
      assert.ok(delta('berth_image_pulls_total') >= 1, `${n}: pulls ${value(was, 'berth_image_pulls_total')} → ${value(now, 'berth_image_pulls_total')}`);
      assert.ok(delta('berth_image_pull_bytes_total') > 0, `${n}: pull bytes`);
      assert.ok(delta('berth_image_cache_misses_total') >= 1, `${n}: cache misses`);
      assert.ok(delta('berth_container_start_latency_seconds_count') >= 1, `${n}: container starts`);
      assert.match(now, new RegExp(`^process_resident_memory_bytes\\{node="${n}"\\} \\d+`, 'm'));
    }
    const other = nodes.find((n) => !ran.includes(n))!;
    assert.equal((await get(node(other).metricsAddress, '/nothing')).status, 404);
  });
});
