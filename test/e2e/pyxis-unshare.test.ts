// pyxis's --container-unshare=net,ipc,uts through the real Slurm and dockerd, checked as pyxis's
// own unshare*.bats check it: the namespaces the tasks are in against the host's, loopback only
// with net, unknown names refused at submit, and named containers joined with their namespaces.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { pushBusyboxImage } from '../support/images';
import { jobDir, jobIdFrom, run } from '../support/slurm';

const PATH = '/usr/local/bin:/usr/bin:/bin';
const TAG = '127.0.0.1:5000/berth/pyxis-unshare:1';
const NS = 'for n in net ipc uts; do echo "$n=$(readlink /proc/self/ns/$n)"; done';

/** net=..., ipc=..., uts=... lines as a record */
function namespaces(text: string): Record<string, string> {
  return Object.fromEntries(text.split('\n').map((l) => /^(net|ipc|uts)=(.+)$/.exec(l.trim())).filter((m) => m !== null).map((m) => [m[1]!, m[2]!]));
}

describe("pyxis's --container-unshare", { timeout: 300_000 }, () => {
  pushBusyboxImage(TAG, { 'etc/marker': 'pyxis-unshare\n' });
  const dir = jobDir('alice', 'pyxis-unshare');
  const cancel: string[] = [];
  after(() => {
    for (const id of cancel) run('scancel', [id]);
  });
  const srun = (args: string[], env: Record<string, string> = {}) => run('srun', ['-N1', '-w', 'n2', ...args], { user: 'alice', cwd: dir, env: { PATH, ...env } });
  const host = () => {
    const r = srun(['sh', '-c', `${NS}; echo "host=$(hostname)"`]);
    assert.equal(r.code, 0, r.stderr);
    return { ns: namespaces(r.stdout), hostname: /^host=(.*)$/m.exec(r.stdout)?.[1] ?? '' };
  };

  it("without it: the host's network and UTS namespaces, and an IPC namespace of the container's own (pyxis shares the host's)", () => {
    const h = host();
    const r = srun([`--container-image=${TAG}`, 'sh', '-c', NS]);
    assert.equal(r.code, 0, r.stderr);
    const c = namespaces(r.stdout);
    assert.equal(c.net, h.ns.net);
    assert.equal(c.uts, h.ns.uts);
    assert.notEqual(c.ipc, h.ns.ipc, "berth never gives a container the host's IPC namespace (its /dev/shm)");
  });

  it('net: a network namespace of its own with only loopback, nothing reachable', () => {
    const h = host();
    const r = srun([`--container-image=${TAG}`, '--container-unshare=net', 'sh', '-c', `${NS}; echo devs=$(tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' | tr '\\n' ' '); echo routes=$(tail -n +2 /proc/net/route | wc -l)`]);
    assert.equal(r.code, 0, r.stderr);
    const c = namespaces(r.stdout);
    assert.notEqual(c.net, h.ns.net);
    assert.equal(c.uts, h.ns.uts, 'uts stays the host\'s unless asked for');
    assert.match(r.stdout, /^devs=lo$/m, r.stdout);
    assert.match(r.stdout, /^routes=0$/m, 'no route: nothing past loopback is reachable');
    // multiple tasks: one network namespace, the container's
    const four = srun(['-O', '--ntasks=4', `--container-image=${TAG}`, '--container-unshare=net', 'sh', '-c', 'readlink /proc/self/ns/net']);
    assert.equal(four.code, 0, four.stderr);
    const ids = [...new Set(four.stdout.trim().split('\n'))];
    assert.equal(ids.length, 1, four.stdout);
    assert.notEqual(ids[0], h.ns.net);
  });

  it("uts: a UTS namespace of its own that starts with the node's hostname; net,ipc,uts all three; PYXIS_CONTAINER_UNSHARE", () => {
    const h = host();
    const uts = srun([`--container-image=${TAG}`, '--container-unshare=uts', 'sh', '-c', `${NS}; echo "host=$(hostname)"`]);
    assert.equal(uts.code, 0, uts.stderr);
    const u = namespaces(uts.stdout);
    assert.notEqual(u.uts, h.ns.uts);
    assert.equal(u.net, h.ns.net);
    assert.match(uts.stdout, new RegExp(`^host=${h.hostname}$`, 'm'));
    const all = srun([`--container-image=${TAG}`, '--container-unshare=net,ipc,uts', 'sh', '-c', `${NS}; echo "host=$(hostname)"`]);
    assert.equal(all.code, 0, all.stderr);
    const a = namespaces(all.stdout);
    for (const n of ['net', 'ipc', 'uts']) assert.notEqual(a[n], h.ns[n], n);
    assert.match(all.stdout, new RegExp(`^host=${h.hostname}$`, 'm'), "with no network of the host's, still the node's name");
    const env = srun(['sh', '-c', 'readlink /proc/self/ns/net'], { PYXIS_CONTAINER_IMAGE: TAG, PYXIS_CONTAINER_UNSHARE: 'net' });
    assert.equal(env.code, 0, env.stderr);
    assert.notEqual(env.stdout.trim(), h.ns.net);
  });

  it('refuses an unknown namespace at submit, naming the ones berth takes', () => {
    for (const v of ['foo', 'net,foo']) {
      const r = srun([`--container-image=${TAG}`, `--container-unshare=${v}`, 'true']);
      assert.notEqual(r.code, 0, v);
      assert.match(r.stderr, /--container-unshare: unknown namespace 'foo'; berth takes net, ipc, uts/, v);
    }
  });

  it('a named container keeps its namespaces for the steps that join it, and one made without them says so', () => {
    const out = path.join(dir, 'named.txt');
    const script = [
      'for n in net uts; do echo "host-$n=$(readlink /proc/self/ns/$n)"; done',
      `srun --container-image=${TAG} --container-name=isolated --container-unshare=net,uts true; echo "made=$?"`,
      'srun --container-name=isolated sh -c \'for n in net uts; do echo "joined-$n=$(readlink /proc/self/ns/$n)"; done\'',
      `srun --container-image=${TAG} --container-name=plain true`,
      'srun --container-name=plain --container-unshare=uts true; echo "plain-uts=$?"',
    ].join('\n');
    const sub = run('sbatch', ['-N1', '-w', 'n2', '-c2', '--mem=400M', '--wait', '-o', out, '--wrap', script], { user: 'alice', cwd: dir, env: { PATH }, timeoutMs: 180_000 });
    const text = readFileSync(out, 'utf8');
    cancel.push(jobIdFrom(sub.stdout));
    assert.match(text, /^made=0$/m, text);
    for (const n of ['net', 'uts']) {
      const hostNs = new RegExp(`^host-${n}=(.+)$`, 'm').exec(text)?.[1];
      const joined = new RegExp(`^joined-${n}=(.+)$`, 'm').exec(text)?.[1];
      assert.ok(hostNs && joined, text);
      assert.notEqual(joined, hostNs, `${n}: ${text}`);
    }
    assert.match(text, /^plain-uts=[1-9]/m, text);
    assert.match(text, /--container-unshare=uts was given, but container \S+ is not in a separate UTS namespace/, text);
  });
});
