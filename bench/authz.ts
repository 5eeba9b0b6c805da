// Enforcement benchmarks (issue #3): the policy engine's decision latency on realistic
// requests, and `docker run -d` on a dockerd that consults berth's AuthZ plugin against a
// dockerd without it, side by side on this machine.   npm run bench:authz [-- --runs N]
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { mapAction } from '../services/agent/docker-request/actions';
import { PolicyEngine } from '../services/agent/policy/engine';
import { parsePolicyFile } from '../services/agent/policy/parse-policy';
import { REPO, node, sandbox, uidOf } from '../test/support/stack';

const runs = Number(process.argv[process.argv.indexOf('--runs') + 1]) || 12;

function quantile(xs: number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))]!;
}

// 1. decision latency
{
  const file = path.join(REPO, 'policies/hpc-default.json');
  const engine = new PolicyEngine(parsePolicyFile(readFileSync(file, 'utf8'), file));
  const ctx = { user: 'alice', groups: ['alice'], job: { jobId: '7', uid: 2001, gid: 2001, cpus: 2, memoryBytes: 2 << 30, devices: [], mountPrefixes: ['/home/alice'], groupIds: [2001] } };
  const body = JSON.stringify({
    Image: '127.0.0.1:5000/berth/demo:1.0', User: '2001:2001', Cmd: ['sleep', '100'], Env: ['A=1'], Labels: {},
    HostConfig: { NetworkMode: 'host', Binds: ['/home/alice/run:/home/alice/run'], SecurityOpt: ['no-new-privileges'], Memory: 1 << 30, NanoCpus: 1e9, CapDrop: ['ALL'] },
  });
  const bad = body.replace('"CapDrop"', '"CapAdd":["SYS_ADMIN"],"CapDrop"');
  const cases = [
    { action: mapAction('POST', '/v1.41/containers/create')!.action, bodyText: body },
    { action: mapAction('POST', '/v1.41/containers/create')!.action, bodyText: bad },
    { action: mapAction('GET', '/v1.41/containers/json')!.action },
  ];
  for (let i = 0; i < 2000; i++) engine.decide(cases[i % 3]!, ctx); // warm up
  const times: number[] = [];
  for (let i = 0; i < 30000; i++) {
    const t0 = performance.now();
    engine.decide(cases[i % 3]!, ctx);
    times.push(performance.now() - t0);
  }
  console.log(`policy engine decision (create allowed, create denied, list; 30000 decisions): p50 ${(quantile(times, 0.5) * 1000).toFixed(1)} µs, p99 ${(quantile(times, 0.99) * 1000).toFixed(1)} µs (goal p99 ≤ 2 ms)`);
}

// 2. docker run -d with and without the plugin
function time(argv: string[], env?: NodeJS.ProcessEnv): number {
  const t0 = performance.now();
  const r = spawnSync(argv[0]!, argv.slice(1), { encoding: 'utf8', env: env ?? process.env });
  if (r.status !== 0) throw new Error(`${argv.join(' ')}: ${r.stderr}`);
  return performance.now() - t0;
}

async function withPlainDockerd(fn: (sock: string) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'berth-bench-dockerd-'));
  const sock = path.join(dir, 'docker.sock');
  const d = spawn('/usr/sbin/dockerd', ['--host', `unix://${sock}`, '--data-root', `${dir}/data`, '--exec-root', `${dir}/exec`, '--pidfile', `${dir}/docker.pid`,
    '--bridge=none', '--iptables=false', '--ip-masq=false', '--containerd-namespace', 'berth-bench', '--containerd-plugins-namespace', 'berth-bench-plugins',
    '--config-file', path.join(dir, 'daemon.json')], { stdio: 'ignore' });
  spawnSync('sh', ['-c', `echo '{}' > ${dir}/daemon.json`]);
  try {
    for (let i = 0; i < 100 && spawnSync('docker', ['-H', `unix://${sock}`, 'version'], { stdio: 'ignore' }).status !== 0; i++) await new Promise((r) => setTimeout(r, 200));
    await fn(sock);
  } finally {
    d.kill('SIGTERM');
    await new Promise((r) => d.once('exit', r));
    // a stopped dockerd can leave mounts (netns, overlay) under its roots: deepest first
    spawnSync('sh', ['-c', `awk -v p=${dir} 'index($2, p "/") == 1 {print $2}' /proc/mounts | sort -r | xargs -r -n1 umount -l`]);
    rmSync(dir, { recursive: true, force: true });
  }
}

/** a running container job of alice on n1, for the job user's figures; scancel'd at the end */
function aliceJob(): { jobId: string; dir: string } {
  const dir = `/home/alice/berth-bench-authz-${Date.now()}`;
  spawnSync('install', ['-d', '-o', 'alice', '-g', 'alice', dir]);
  const sub = spawnSync('runuser', ['-u', 'alice', '--', 'sbatch', '-N1', '-w', 'n1', '--no-container-batch', `--container-image=${sandbox().demoImage}`, '-o', '/dev/null', '--wrap', 'sleep 900'], { cwd: dir, encoding: 'utf8' });
  const jobId = /Submitted batch job (\d+)/.exec(sub.stdout)?.[1];
  if (!jobId) throw new Error(`sbatch failed: ${sub.stderr}`);
  for (let i = 0; i < 300 && spawnSync('test', ['-S', `/run/berth/n1/jobs/${jobId}.docker.sock`]).status !== 0; i++) spawnSync('sleep', ['0.2']);
  return { jobId, dir };
}

await withPlainDockerd(async (plain) => {
  const n1 = node('n1');
  const image = sandbox().demoImage;
  const uid = uidOf('alice');
  spawnSync('sh', ['-c', `docker -H unix://${n1.dockerSocket} pull -q ${image} >/dev/null && docker -H unix://${n1.dockerSocket} save ${image} | docker -H unix://${plain} load -q`]);
  const job = aliceJob();
  const args = ['run', '-d', '--network', 'host', '--user', `${uid}:${uid}`, '--security-opt', 'no-new-privileges', '--memory', '500m', '--memory-swap', '500m', '--cpus', '1', '-v', `${job.dir}:${job.dir}`, image, 'sleep', '60'];
  const cert = `/run/berth/n1/jobs/${job.jobId}`;
  const ways: [string, (name: string) => string[], (name: string) => void][] = [
    ['plain dockerd, no plugin, runc', (name) => ['docker', '-H', `unix://${plain}`, 'run', '--name', name, ...args.slice(1)], (name) => void spawnSync('docker', ['-H', `unix://${plain}`, 'rm', '-f', name], { stdio: 'ignore' })],
    ["root on n1 (AuthZ plugin, berth-runc passes root's)", (name) => ['docker', '-H', `unix://${n1.dockerSocket}`, 'run', '--name', name, ...args.slice(1)], (name) => void spawnSync('docker', ['-H', `unix://${n1.dockerSocket}`, 'rm', '-f', name], { stdio: 'ignore' })],
    ["the job's user over TLS (plugin, effect gate at start, berth-runc: pins, job cgroup)", (name) => ['runuser', '-u', 'alice', '--', 'env', `DOCKER_HOST=tcp://${n1.dockerTlsAddress}`, 'DOCKER_TLS_VERIFY=1', `DOCKER_CERT_PATH=${cert}`,
      'docker', 'run', '--name', name, '--label', `io.berth.job.id=${job.jobId}`, '--label', 'io.berth.role=user', ...args.slice(1)], (name) => void spawnSync('docker', ['-H', `unix://${n1.dockerSocket}`, 'rm', '-f', name], { stdio: 'ignore' })],
    ["the job's user through the job's endpoint (the same, plus the endpoint)", (name) => ['runuser', '-u', 'alice', '--', 'env', `DOCKER_HOST=unix:///run/berth/n1/jobs/${job.jobId}.docker.sock`, 'docker', 'run', '--name', name, ...args.slice(1)],
      (name) => void spawnSync('docker', ['-H', `unix://${n1.dockerSocket}`, 'rm', '-f', name], { stdio: 'ignore' })],
  ];
  const times = ways.map(() => [] as number[]);
  try {
    for (let i = 0; i < runs; i++) {
      ways.forEach(([, cmd, cleanup], w) => {
        const name = `berth-bench-${w}-${i}`.replace(/^berth-/, 'bench-');
        times[w]!.push(time(cmd(name)));
        cleanup(name);
      });
    }
  } finally {
    spawnSync('scancel', [job.jobId]);
  }
  const base = quantile(times[0]!, 0.5);
  console.log(`docker run -d, medians of ${runs} interleaved runs, ÷ the plain dockerd:`);
  ways.forEach(([what], w) => {
    const m = quantile(times[w]!, 0.5);
    console.log(`  ${what}: ${m.toFixed(1)} ms, ratio ${(m / base).toFixed(2)}`);
  });
});
