import assert from 'node:assert/strict';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { buildJobContainerSpec, policyView } from '../../services/agent/containers/job-container-spec';
import { mapAction, parseQuery } from '../../services/agent/docker-request/actions';
import { formatDenial, PolicyEngine } from '../../services/agent/policy/engine';
import { realHostPath } from '../../services/agent/policy/host-paths';
import { parsePolicyFile } from '../../services/agent/policy/parse-policy';
import type { Decision, PolicyContext, PolicyRequest } from '../../services/agent/policy/policy-types';

const POLICIES = path.join(import.meta.dirname, '..', '..', 'policies');
const hpcDefault = parsePolicyFile(readFileSync(path.join(POLICIES, 'hpc-default.json'), 'utf8'), 'hpc-default.json');

// A host tree for bind checks: the job's directory, symlinks out of it, a stand-in Docker socket.
const root = mkdtempSync(path.join(os.tmpdir(), 'berth-policy-'));
chmodSync(root, 0o755); // the job user must be able to reach what they mount
const home = path.join(root, 'home', 'alice');
mkdirSync(path.join(home, 'run'), { recursive: true });
mkdirSync(path.join(root, 'other'), { recursive: true });
const fakeSocket = path.join(root, 'docker.sock');
writeFileSync(fakeSocket, '');
symlinkSync('/etc', path.join(home, 'etc-link'));
symlinkSync('..', path.join(home, 'up'));
symlinkSync(fakeSocket, path.join(home, 'sock-link'));
symlinkSync('/var/run/docker.sock', path.join(home, 'docker-sock-link'));
symlinkSync(path.join(root, 'other'), path.join(home, 'other-link'));
// under the job's prefix, yet not the job user's to reach: a directory of another uid, mode 0700, and a readable one below it
const locked = path.join(home, 'locked');
mkdirSync(path.join(locked, 'proj'), { recursive: true });
chownSync(locked, 3000, 3000);
chmodSync(locked, 0o700);
const unreadable = path.join(home, 'unreadable');
mkdirSync(unreadable);
chownSync(unreadable, 3000, 3000);
chmodSync(unreadable, 0o711);

const engine = new PolicyEngine(hpcDefault, { resolvePath: realHostPath, protectedPaths: [fakeSocket], registries: ['127.0.0.1:5000'] });

const GiB = 1024 ** 3;
const ALICE: PolicyContext = {
  user: 'alice',
  groups: ['alice', 'hpc'],
  job: {
    jobId: '42', uid: 2001, gid: 2001, cpus: 2, memoryBytes: GiB, groupIds: [2100],
    devices: ['/dev/infiniband/uverbs0', '/dev/infiniband/rdma_cm'], mountPrefixes: [home], volumes: ['scratch'],
  },
};
const NO_JOB: PolicyContext = { user: 'alice', groups: ['alice'] };

type Body = Record<string, unknown> & { HostConfig: Record<string, unknown> };

/** A create body hpc-default allows, as the docker CLI sends it (zero values included). */
function good(): Body {
  return {
    Hostname: '', User: '2001:2001', Env: null, Cmd: ['sh'], Image: '127.0.0.1:5000/berth/demo:1.0', Labels: { 'io.berth.job.id': '42', 'io.berth.role': 'user' }, Volumes: null, WorkingDir: '',
    HostConfig: {
      Binds: [`${home}/run:/work`], NetworkMode: 'default', PortBindings: {}, RestartPolicy: { Name: 'no', MaximumRetryCount: 0 },
      LogConfig: { Type: '', Config: {} }, AutoRemove: true, VolumeDriver: '', VolumesFrom: null, CapAdd: null, CapDrop: ['ALL'], CgroupnsMode: '',
      GroupAdd: null, IpcMode: '', Cgroup: '', OomScoreAdj: 0, PidMode: '', Privileged: false, PublishAllPorts: false, SecurityOpt: ['no-new-privileges'],
      UTSMode: '', UsernsMode: '', ShmSize: 0, Memory: GiB, MemorySwap: GiB, NanoCpus: 2e9, CgroupParent: '', CpuQuota: 0, CpuPeriod: 0, CpusetCpus: '', CpusetMems: '',
      Devices: [], DeviceCgroupRules: null, DeviceRequests: null, OomKillDisable: null, MaskedPaths: null, ReadonlyPaths: null, Mounts: null,
    },
  };
}

function create(edit: (b: Body) => void): PolicyRequest {
  const b = good();
  edit(b);
  return { action: 'container_create', bodyText: JSON.stringify(b) };
}

const hc = (over: Record<string, unknown>): PolicyRequest => create((b) => Object.assign(b.HostConfig, over));
/** a good create body whose HostConfig text is replaced: for duplicate and odd keys JSON.stringify cannot write */
function rawCreate(hostConfigText: string): PolicyRequest {
  const b = good();
  const hcText = JSON.stringify(b.HostConfig);
  const { HostConfig: _, ...rest } = b;
  return { action: 'container_create', bodyText: JSON.stringify(rest).replace(/}$/, `,"HostConfig":${hcText},${hostConfigText}}`) };
}

interface Case {
  name: string;
  req: PolicyRequest;
  ctx?: PolicyContext;
  /** 'allow', or what the denial must say */
  expect: 'allow' | { policy?: string; reason: RegExp; field?: string };
}

const D = (reason: RegExp, field?: string, policy = 'hpc-default'): Case['expect'] => ({ policy, reason, field });
const B = (reason: RegExp, field?: string): Case['expect'] => ({ policy: 'berth', reason, field });

const cases: Case[] = [
  // what job users do every day
  { name: 'a create as the docker CLI sends it', req: create(() => {}), expect: 'allow' },
  { name: 'host networking (what MPI wants)', req: hc({ NetworkMode: 'host' }), expect: 'allow' },
  { name: "the job's devices", req: hc({ Devices: [{ PathOnHost: '/dev/infiniband/uverbs0', PathInContainer: '/dev/infiniband/uverbs0', CgroupPermissions: 'rwm' }] }), expect: 'allow' },
  { name: 'a bind mount under the prefix via Mounts', req: hc({ Mounts: [{ Type: 'bind', Source: `${home}/run`, Target: '/w' }] }), expect: 'allow' },
  { name: 'a named volume', req: hc({ Binds: ['scratch:/scratch'] }), expect: 'allow' },
  { name: "a readable directory under another uid's 0700 directory", req: hc({ Binds: [`${locked}/proj:/x`] }), expect: B(/uid 2001 may not enter .*locked \(mode 700\), so it may not mount what is below it; a container may mount only what you could open yourself/) },
  { name: 'the same through Mounts', req: hc({ Mounts: [{ Type: 'bind', Source: `${locked}/proj`, Target: '/x' }] }), expect: B(/may not enter .*locked/) },
  { name: 'a directory the user may enter but not read', req: hc({ Binds: [`${unreadable}:/x`] }), expect: B(/is not readable by uid 2001 \(mode 711/) },
  { name: 'a bounded log and pids limit', req: hc({ LogConfig: { Type: 'json-file', Config: { 'max-size': '10m', 'max-file': '3' } }, PidsLimit: 100 }), expect: 'allow' },
  { name: "a named volume the job did not create (another user's)", req: hc({ Binds: ['bobs:/data'] }), expect: B(/volume bobs is not one your job created/) },
  { name: 'a named volume through Mounts', req: hc({ Mounts: [{ Type: 'volume', Source: 'bobs', Target: '/x' }] }), expect: B(/volume bobs is not one your job created/) },
  { name: 'a tmpfs mount', req: hc({ Mounts: [{ Type: 'tmpfs', Target: '/tmp' }] }), expect: 'allow' },
  { name: 'a CPU quota within the job (no NanoCpus)', req: hc({ NanoCpus: 0, CpuQuota: 150000, CpuPeriod: 100000 }), expect: 'allow' },
  { name: "the job user's supplementary group", req: hc({ GroupAdd: ['2100'] }), expect: 'allow' },
  { name: 'no-new-privileges spelt =true', req: hc({ SecurityOpt: ['no-new-privileges=true'] }), expect: 'allow' },
  { name: 'no memory rule when the job has no memory limit', req: hc({ Memory: 0 }), ctx: { ...ALICE, job: { ...ALICE.job!, memoryBytes: 0 } }, expect: 'allow' },
  { name: 'a pull from the site registry', req: { action: 'image_create', query: { fromImage: '127.0.0.1:5000/berth/demo', tag: '1.0' } }, expect: 'allow' },
  { name: 'exec as the container user', req: { action: 'container_exec_create', bodyText: '{"User":"","Privileged":false,"Cmd":["sh"]}' }, expect: 'allow' },
  { name: "exec as the job's uid:gid (berthd's alias exec_create)", req: { action: 'exec_create', bodyText: '{"User":"2001:2001","Cmd":["sh"]}' }, expect: 'allow' },
  { name: 'an update as the docker CLI sends it (zeros mean unchanged)', req: { action: 'container_update', bodyText: '{"Memory":0,"NanoCpus":0,"CpuQuota":0,"CpusetCpus":"","RestartPolicy":{"Name":"","MaximumRetryCount":0}}' }, expect: 'allow' },
  { name: 'docker ping, version, info', req: { action: 'docker_ping' }, expect: 'allow' },
  { name: 'container list', req: { action: 'container_list' }, expect: 'allow' },
  { name: 'a start without a body', req: { action: 'container_start', bodyText: '' }, expect: 'allow' },
  { name: 'a plain volume', req: { action: 'volume_create', bodyText: '{"Name":"scratch","Driver":"local","DriverOpts":{},"Labels":{}}' }, expect: 'allow' },

  // body tricks
  { name: "a lower-case 'hostconfig' key", req: rawCreate('"hostconfig":{"Privileged":true}'), expect: D(/^HostConfig\.Privileged=true is not allowed$/, 'HostConfig.Privileged') },
  { name: "an upper-case 'HOSTCONFIG' key", req: rawCreate('"HOSTCONFIG":{"CAPADD":["SYS_ADMIN"]}'), expect: D(/HostConfig\.CapAdd=\[SYS_ADMIN\] is not allowed/) },
  { name: 'Hoſtconfig (U+017F folds to s in Go)', req: rawCreate('"Ho\u017ftconfig":{"Privileged":true}'), expect: D(/HostConfig\.Privileged=true/) },
  { name: 'MasKedPaths (Kelvin sign folds to k in Go)', req: rawCreate('"HostConfig":{"Mas\u212AedPaths":[]}'), expect: D(/HostConfig\.MaskedPaths=\[\] is not allowed/) },
  { name: 'a duplicate key whose last value is privileged', req: { action: 'container_create', bodyText: JSON.stringify(good()).replace('"Privileged":false', '"Privileged":false,"Privileged":true') }, expect: D(/HostConfig\.Privileged=true/) },
  { name: 'a second HostConfig merged into the first (Go decodes into the same struct)', req: (() => {
    const b = good();
    const text = JSON.stringify(b).replace('"HostConfig":{', '"HostConfig":{"CapAdd":["NET_ADMIN"]},"HostConfig":{');
    return { action: 'container_create', bodyText: text.replace('"CapAdd":null,', '') };
  })(), expect: D(/HostConfig\.CapAdd=\[NET_ADMIN\]/) },
  { name: 'null after a value does not erase it', req: { action: 'container_create', bodyText: JSON.stringify(good()).replace('"CapAdd":null', '"CapAdd":["SYS_ADMIN"],"CapAdd":null') }, expect: D(/HostConfig\.CapAdd=\[SYS_ADMIN\]/) },
  { name: 'list elements merged across duplicate lists (golang/go#21092)', req: rawCreate('"HostConfig":{"Mounts":[{"Type":"bind","Source":"/etc","Target":"/x"}]},"HostConfig":{"Mounts":[{"Target":"/x"}]}'), expect: D(/HostConfig\.Mounts\[0\]=.*Source: \/etc.* is not allowed: the host path \/etc is not under/) },
  { name: 'an escaped key (Privil\\u0065ged)', req: rawCreate('"HostConfig":{"Privil\\u0065ged":true}'), expect: D(/HostConfig\.Privileged=true/) },
  { name: 'a duplicate User whose last value is root', req: { action: 'container_create', bodyText: JSON.stringify(good()).replace('"User":"2001:2001"', '"User":"2001:2001","user":"0"') }, expect: D(/^User=0 is not allowed: it must be 2001:2001/, 'User') },
  { name: 'Privileged at the top level (dockerd before 25 reads it)', req: create((b) => { b.Privileged = true; }), expect: D(/Privileged=true is not allowed, outside HostConfig/) },
  { name: 'Binds at the top level', req: create((b) => { b.Binds = ['/etc:/etc']; }), expect: D(/Binds\[0\]=\/etc:\/etc is not allowed: the host path \/etc is not under .* outside HostConfig/) },
  { name: 'JSON with a comment', req: { action: 'container_create', bodyText: '{"Image":"127.0.0.1:5000/a", /* x */ "User":"2001:2001"}' }, expect: B(/the request body is not JSON dockerd and berth read alike/) },
  { name: 'trailing garbage after the body', req: { action: 'container_create', bodyText: `${JSON.stringify(good())}garbage` }, expect: B(/not JSON .*unexpected text after the JSON value/) },
  { name: 'a second JSON document after the body', req: { action: 'container_create', bodyText: `${JSON.stringify(good())}{"HostConfig":{"Privileged":true}}` }, expect: B(/unexpected text after the JSON value/) },
  { name: 'a trailing comma', req: { action: 'container_create', bodyText: '{"Image":"x",}' }, expect: B(/not JSON/) },
  { name: 'an empty body on create (over 1 MiB, chunked: dockerd sends none)', req: { action: 'container_create', bodyText: '' }, expect: B(/without its body .* send a JSON body under 1 MiB/) },
  { name: 'no body at all on create', req: { action: 'container_create' }, expect: B(/without its body/) },
  { name: 'no body on exec create', req: { action: 'container_exec_create' }, expect: B(/without its body/) },
  { name: 'no body on update', req: { action: 'container_update', bodyText: '   ' }, expect: B(/without its body/) },
  { name: 'a body that is not an object', req: { action: 'container_create', bodyText: '[{"Image":"x"}]' }, expect: B(/must be a JSON object/) },
  { name: 'a huge memory number (1e400)', req: { action: 'container_create', bodyText: JSON.stringify(good()).replace(`"Memory":${GiB}`, '"Memory":1e400') }, expect: D(/HostConfig\.Memory=1e400 is not allowed: it must be at most 1073741824/) },
  { name: 'a memory number past int64', req: { action: 'container_create', bodyText: JSON.stringify(good()).replace(`"Memory":${GiB}`, '"Memory":99999999999999999999') }, expect: D(/HostConfig\.Memory=99999999999999999999 is not allowed/) },
  { name: 'a huge NanoCpus', req: { action: 'container_create', bodyText: JSON.stringify(good()).replace('"NanoCpus":2000000000', '"NanoCpus":1e30') }, expect: D(/HostConfig\.NanoCpus=1e30 .* it must be at most 2 CPUs/) },
  { name: 'memory as text', req: hc({ Memory: '1g' }), expect: D(/HostConfig\.Memory=1g is not a number/) },

  // the container's user: root in every spelling, and names
  ...[['0', '0'], ['0:0', '0:0'], ['root', 'root'], ['root:root', 'root:root'], ['00', '00'], [' 0', "' 0'"], ['0:1001', '0:1001'], ['2001:0', '2001:0'], ['alice', 'alice'],
    ['alice:alice', 'alice:alice'], ['2001', '2001'], ['2001:2001 ', "'2001:2001 '"], ['+2001:2001', '+2001:2001'], ['2001:2001:0', '2001:2001:0'], ['2001:02001', '2001:02001']].map(([u, shown]): Case => ({
    name: `User '${u}'`, req: create((b) => { b.User = u; }), expect: D(new RegExp(`^User=${shown!.replace(/[+]/g, '\\+')} is not allowed: it must be 2001:2001`), 'User'),
  })),
  { name: "User ''", req: create((b) => { b.User = ''; }), expect: D(/^User is not set: it must be 2001:2001/, 'User') },
  { name: 'no User (the image would choose)', req: create((b) => { delete b.User; }), expect: D(/^User is not set: it must be 2001:2001/) },
  { name: 'exec as root', req: { action: 'container_exec_create', bodyText: '{"User":"0","Cmd":["sh"]}' }, expect: D(/^User=0 is not allowed: it must be 2001:2001/) },
  { name: 'a privileged exec', req: { action: 'container_exec_create', bodyText: '{"Privileged":true,"Cmd":["sh"]}' }, expect: D(/^Privileged=true is not allowed$/) },
  { name: 'a foreign group', req: hc({ GroupAdd: ['0'] }), expect: D(/HostConfig\.GroupAdd\[0\]=0 is not allowed: it must be one of 2001, 2100/) },
  { name: 'a group by name (the image maps names)', req: hc({ GroupAdd: ['docker'] }), expect: D(/GroupAdd\[0\]=docker is not allowed/) },

  // mounts
  { name: 'a bind of /etc', req: hc({ Binds: ['/etc:/etc:ro'] }), expect: D(/HostConfig\.Binds\[0\]=\/etc:\/etc:ro is not allowed: the host path \/etc is not under /, 'HostConfig.Binds[0]') },
  { name: 'a symlink under the prefix pointing at /etc', req: hc({ Binds: [`${home}/etc-link:/x`] }), expect: D(/resolving to \/etc\) is not under/) },
  { name: 'a path through such a symlink', req: hc({ Binds: [`${home}/etc-link/passwd:/x`] }), expect: D(/resolving to \/etc\/passwd\) is not under/) },
  { name: 'a symlink to the parent directory', req: hc({ Binds: [`${home}/up:/x`] }), expect: D(/resolving to .*\/home\) is not under/) },
  { name: 'a symlink to a directory outside', req: hc({ Binds: [`${home}/other-link:/x`] }), expect: D(/resolving to .*\/other\) is not under/) },
  { name: 'a .. in the bind path', req: hc({ Binds: [`${home}/../../other:/x`] }), expect: D(/contains '\.' or '\.\.'/) },
  { name: 'a path that does not exist (dockerd would create it as root)', req: hc({ Binds: [`${home}/new:/x`] }), expect: D(/does not exist on this node \(create it first/) },
  { name: 'the Docker socket', req: hc({ Binds: ['/var/run/docker.sock:/var/run/docker.sock'] }), expect: B(/the host path \/var\/run\/docker\.sock is the Docker socket, which no container may mount/) },
  { name: 'the Docker socket at /run', req: hc({ Binds: ['/run/docker.sock:/s'] }), expect: B(/is the Docker socket/) },
  { name: 'the directory holding the Docker socket', req: hc({ Binds: ['/run:/host-run'] }), expect: B(/the host path \/run holds the Docker socket/) },
  { name: 'the host root', req: hc({ Mounts: [{ Type: 'bind', Source: '/', Target: '/host' }] }), expect: B(/the host path \/ holds the Docker socket/) },
  { name: 'a symlink to a protected socket, under the prefix', req: hc({ Binds: [`${home}/sock-link:/s`] }), expect: B(/resolving to .*docker\.sock\) is the protected path/) },
  // berth's own rule where the socket exists (it resolves there), the policy's where it does not (a dangling link)
  { name: 'a symlink to /var/run/docker.sock', req: hc({ Binds: [`${home}/docker-sock-link:/s`] }), expect: { reason: /Binds\[0\]=.*docker-sock-link:\/s is not allowed: .*(is the Docker socket|does not exist)/ } },
  { name: 'a bind of /etc through Mounts', req: hc({ Mounts: [{ Type: 'bind', Source: '/etc', Target: '/x' }] }), expect: D(/HostConfig\.Mounts\[0\]=.* is not allowed: the host path \/etc is not under/) },
  { name: "a Mounts type spelt 'BIND'", req: hc({ Mounts: [{ Type: 'BIND', Source: '/etc', Target: '/x' }] }), expect: D(/the host path \/etc is not under/) },
  { name: 'a Mounts entry without a type', req: hc({ Mounts: [{ Source: '/etc', Target: '/x' }] }), expect: D(/the host path \/etc is not under/) },
  { name: 'a volume with driver options (a bind in disguise)', req: hc({ Mounts: [{ Type: 'volume', Source: 'v', Target: '/x', VolumeOptions: { DriverConfig: { Name: 'local', Options: { type: 'none', o: 'bind', device: '/etc' } } } }] }), expect: D(/HostConfig\.Mounts\[0\]\.VolumeOptions\.DriverConfig=.* is not allowed/) },
  { name: 'a volume driver', req: hc({ VolumeDriver: 'local-persist' }), expect: D(/HostConfig\.VolumeDriver=local-persist is not allowed/) },
  { name: "another container's volumes", req: hc({ VolumesFrom: ['other-job'] }), expect: D(/HostConfig\.VolumesFrom=\[other-job\] is not allowed/) },
  { name: 'a volume created with driver options', req: { action: 'volume_create', bodyText: '{"Name":"v","Driver":"local","DriverOpts":{"type":"none","o":"bind","device":"/"}}' }, expect: D(/^DriverOpts=.* is not allowed/) },
  { name: 'unmasking /proc', req: hc({ MaskedPaths: [] }), expect: D(/HostConfig\.MaskedPaths=\[\] is not allowed/) },

  // devices
  { name: 'a disk', req: hc({ Devices: [{ PathOnHost: '/dev/sda', PathInContainer: '/dev/sda', CgroupPermissions: 'rwm' }] }), expect: D(/HostConfig\.Devices\[0\]\.PathOnHost=\/dev\/sda is not allowed: it must be one of \/dev\/infiniband\/uverbs0, \/dev\/infiniband\/rdma_cm/) },
  { name: 'a device path walking out of the allowed directory', req: hc({ Devices: [{ PathOnHost: '/dev/infiniband/../sda' }] }), expect: D(/PathOnHost=\/dev\/infiniband\/\.\.\/sda is not allowed/) },
  { name: 'device cgroup rules', req: hc({ DeviceCgroupRules: ['c *:* rwm'] }), expect: D(/HostConfig\.DeviceCgroupRules=\['c \*:\* rwm'\] is not allowed/) },
  { name: 'all GPUs', req: hc({ DeviceRequests: [{ Driver: 'nvidia', Count: -1, Capabilities: [['gpu']] }] }), expect: D(/HostConfig\.DeviceRequests=.* is not allowed/) },

  // namespaces and privileges
  { name: 'privileged', req: hc({ Privileged: true }), expect: D(/^HostConfig\.Privileged=true is not allowed$/) },
  { name: 'CapAdd', req: hc({ CapAdd: ['SYS_ADMIN'] }), expect: D(/^HostConfig\.CapAdd=\[SYS_ADMIN\] is not allowed$/, 'HostConfig.CapAdd') },
  ...([['PidMode', 'host'], ['PidMode', 'container:other'], ['IpcMode', 'host'], ['IpcMode', 'container:other'], ['UTSMode', 'host'], ['UsernsMode', 'host'], ['CgroupnsMode', 'host'], ['NetworkMode', 'container:other'], ['Cgroup', 'container:other'], ['CgroupParent', '/']] as const).map(([f, v]): Case => ({
    name: `${f} ${v}`, req: hc({ [f]: v }), expect: D(new RegExp(`^HostConfig\\.${f}=${v} is not allowed`), `HostConfig.${f}`),
  })),
  { name: 'no no-new-privileges', req: hc({ SecurityOpt: null }), expect: D(/^HostConfig\.SecurityOpt is not set: it must include no-new-privileges/) },
  ...['seccomp=unconfined', 'seccomp:unconfined', 'apparmor=unconfined', 'apparmor:unconfined', 'label=disable', 'label:disable', 'label=type:spc_t', 'systempaths=unconfined', 'writable-cgroups=true', 'disable', 'no-new-privileges=false', 'seccomp={"defaultAction":"SCMP_ACT_ALLOW"}'].map((o): Case => ({
    name: `SecurityOpt ${o}`, req: hc({ SecurityOpt: ['no-new-privileges', o] }), expect: D(/^HostConfig\.SecurityOpt\[1\]=.* is not allowed: it must be one of no-new-privileges/, 'HostConfig.SecurityOpt[1]'),
  })),
  { name: 'sysctls', req: hc({ Sysctls: { 'kernel.shmmax': '1' } }), expect: D(/HostConfig\.Sysctls=.* is not allowed/) },
  { name: 'a restart policy that outlives the job', req: hc({ RestartPolicy: { Name: 'always' } }), expect: D(/HostConfig\.RestartPolicy\.Name=always is not allowed/) },

  // images
  ...[['ubuntu', /ubuntu is from docker\.io/], ['docker.io/library/ubuntu:22.04', /is from docker\.io/], ['evil.example:5000/x:1', /is from evil\.example:5000/], ['127.0.0.1:5001/berth/demo:1.0', /is from 127\.0\.0\.1:5001/], ['localhost:5000/berth/demo:1.0', /is from localhost:5000/], [`sha256:${'a'.repeat(64)}`, /not an image id/], ['deadbeef', /not an image id/], ['127.0.0.1:5000.evil.io/x', /not a valid image reference/], ['Evil/x', /not a valid image reference/]].map(([img, re]): Case => ({
    name: `image ${String(img)}`, req: create((b) => { b.Image = img; }), expect: D(new RegExp(`^Image=.* is not allowed: .*${(re as RegExp).source}`), 'Image'),
  })),
  { name: 'a pull from Docker Hub', req: { action: 'image_create', query: { fromImage: 'ubuntu', tag: 'latest' } }, expect: D(/query parameter fromImage=ubuntu is not allowed: it must be an image from 127\.0\.0\.1:5000/) },
  { name: 'an import (fromSrc)', req: { action: 'image_create', query: { fromSrc: '-', repo: '127.0.0.1:5000/x' } }, expect: D(/query parameter fromImage is not set.*query parameter fromSrc=- is not allowed \(importing images is not allowed/) },
  { name: 'an import hidden beside a good fromImage', req: { action: 'image_create', query: { fromImage: '127.0.0.1:5000/x', fromSrc: 'http://evil/x.tar' } }, expect: D(/query parameter fromSrc=.* is not allowed/) },
  { name: 'a repeated fromImage (dockerd takes the first)', req: { action: 'image_create', query: parseQuery('/images/create?fromImage=docker.io/evil&fromImage=127.0.0.1:5000/x')! }, expect: D(/query parameter fromImage is given 2 times with different values/) },
  { name: 'a form-encoded body that would override the query', req: { action: 'image_create', query: { fromImage: '127.0.0.1:5000/x' }, contentType: 'application/x-www-form-urlencoded; charset=utf-8' }, expect: B(/a form-encoded body is not allowed/) },

  // the job's allocation
  { name: 'more memory than the job has', req: hc({ Memory: 2 * GiB }), expect: D(/^HostConfig\.Memory=2147483648 is not allowed: it must be at most 1073741824/) },
  { name: 'no memory limit (0)', req: hc({ Memory: 0 }), expect: D(/^HostConfig\.Memory is not set: unset means no limit/) },
  { name: 'memory -1', req: hc({ Memory: -1 }), expect: D(/HostConfig\.Memory=-1 means no limit/) },
  { name: 'unlimited swap (--memory-swap -1)', req: hc({ MemorySwap: -1 }), expect: D(/HostConfig\.MemorySwap=-1 means no limit/) },
  { name: 'swap beyond the job', req: hc({ MemorySwap: 4 * GiB }), expect: D(/^HostConfig\.MemorySwap=4294967296 is not allowed: it must be at most 1073741824/) },
  { name: 'swap within the job but beyond the memory', req: hc({ Memory: GiB / 2, MemorySwap: GiB }), expect: B(/^HostConfig\.MemorySwap=1073741824: the site allows no swap; give --memory-swap equal to --memory \(536870912\)/) },
  { name: 'a runtime other than the site\'s', req: hc({ Runtime: 'io.containerd.runc.v2' }), expect: B(/Runtime=io\.containerd\.runc\.v2 is not allowed: containers run with the site's runtime runc/) },
  { name: 'a log driver other than the site\'s', req: hc({ LogConfig: { Type: 'syslog', Config: {} } }), expect: D(/LogConfig\.Type=syslog is not allowed/) },
  { name: 'a log without size bound (max-size -1)', req: hc({ LogConfig: { Type: 'json-file', Config: { 'max-size': '-1' } } }), expect: B(/--log-opt max-size=-1 is not allowed: it must be a size of at most 100m/) },
  { name: 'a log bigger than the site allows', req: hc({ LogConfig: { Type: 'json-file', Config: { 'max-size': '10g' } } }), expect: B(/--log-opt max-size=10g is not allowed: it must be at most 100m/) },
  { name: 'too many log files', req: hc({ LogConfig: { Type: 'local', Config: { 'max-file': '500' } } }), expect: B(/--log-opt max-file=500 is not allowed: it must be 1 to 5/) },
  { name: 'a log option that is the site\'s', req: hc({ LogConfig: { Type: 'json-file', Config: { 'labels-regex': '.*' } } }), expect: B(/--log-opt labels-regex is not allowed/) },
  { name: 'no pids limit (--pids-limit -1)', req: hc({ PidsLimit: -1 }), expect: B(/PidsLimit=-1 means no limit/) },
  { name: 'a pids limit over the site\'s', req: hc({ PidsLimit: 10_000_000 }), expect: B(/PidsLimit=10000000 is not allowed: it must be at most 32768/) },
  { name: "swap left to dockerd (0), which gives twice the memory", req: hc({ MemorySwap: 0 }), expect: B(/MemorySwap is not set, so Docker gives the container as much swap as memory \(memory plus swap 2147483648\)/) },
  { name: 'swap left out', req: create((b) => { delete b.HostConfig.MemorySwap; }), expect: B(/MemorySwap is not set/) },
  { name: 'more CPUs than the job has', req: hc({ NanoCpus: 4e9 }), expect: D(/^HostConfig\.NanoCpus=4000000000 \(4 CPUs\) is not allowed: it must be at most 2 CPUs/) },
  { name: 'no CPU limit', req: hc({ NanoCpus: 0 }), expect: D(/^HostConfig\.NanoCpus is not set \(no CPU limit\)/) },
  { name: 'a CPU quota above the job', req: hc({ NanoCpus: 0, CpuQuota: 400000, CpuPeriod: 100000 }), expect: D(/HostConfig\.CpuQuota=400000 with CpuPeriod 100000 \(4 CPUs\) is not allowed/) },
  { name: 'CPUs pinned', req: hc({ CpusetCpus: '0-63' }), expect: D(/HostConfig\.CpusetCpus=0-63 is not allowed/) },
  { name: 'an update past the memory', req: { action: 'container_update', bodyText: `{"Memory":${4 * GiB}}` }, expect: D(/^Memory=4294967296 is not allowed: it must be at most 1073741824/) },
  { name: 'an update lifting the CPU quota', req: { action: 'container_update', bodyText: '{"CpuQuota":-1}' }, expect: D(/CpuQuota=-1 means no CPU limit/) },

  // actions
  ...['image_build', 'image_load', 'image_commit', 'image_push', 'image_tag', 'container_archive_extract', 'container_archive', 'container_export', 'container_prune', 'plugin_pull', 'swarm_init', 'service_create', 'secret_create', 'network_create', 'network_connect', 'session'].map((a): Case => ({
    name: `action ${a}`, req: { action: a }, expect: D(new RegExp(`^${a} is denied by the policy \\(deny_actions '.*'\\)$`)),
  })),
  { name: 'an action no policy lists', req: { action: 'image_history' }, expect: D(/^image_history is not among the actions the policy allows$/) },
  { name: 'an action berth does not know', req: { action: 'frobnicate' }, expect: B(/'frobnicate' is not a Docker API action berth knows/) },

  // berth's own names, labels and old-API tricks
  { name: 'a start with a HostConfig body (API < 1.24)', req: { action: 'container_start', bodyText: '{"Privileged":true}' }, expect: B(/a body on container_start is not allowed/) },
  { name: "a container named like berth's job containers", req: { ...create(() => {}), query: { name: 'berth-n1-job-43' } }, expect: B(/the container name berth-n1-job-43 is not allowed/) },
  { name: 'the same with a leading slash', req: { ...create(() => {}), query: { name: '/berth-n1-job-43' } }, expect: B(/names starting with berth- are berth's job containers/) },
  { name: 'the same in capitals', req: { ...create(() => {}), query: { name: 'BERTH-n1-job-43' } }, expect: B(/the container name BERTH-n1-job-43 is not allowed/) },
  { name: "a rename to berth's names", req: { action: 'container_rename', query: { name: 'berth-n1-job-7' } }, expect: B(/berth-n1-job-7 is not allowed/) },
  { name: "berth's job label", req: create((b) => { b.Labels = { 'io.berth.job.id': '43' }; }), expect: B(/the label io\.berth\.job\.id is not allowed/) },
  { name: "berth's label hidden by a case-variant duplicate", req: { action: 'container_create', bodyText: JSON.stringify(good()).replace('"Labels":{"io.berth.job.id":"42","io.berth.role":"user"}', '"Labels":{"io.berth.job.id":"42","io.berth.role":"user","IO.BERTH.JOB.ID":"43"}') }, expect: B(/the labels io\.berth\.job\.id, IO\.BERTH\.JOB\.ID are not allowed/) },
  { name: "another job's label", req: create((b) => { b.Labels = { 'io.berth.job.id': '43', 'io.berth.role': 'user' }; }), expect: B(/the label io\.berth\.job\.id is not allowed/) },
  { name: "berth's role", req: create((b) => { b.Labels = { 'io.berth.job.id': '42', 'io.berth.role': 'job' }; }), expect: B(/the label io\.berth\.role is not allowed/) },
  { name: 'no job label (the container would hide from the job)', req: create((b) => { b.Labels = {}; }), expect: B(/carries the labels io\.berth\.job\.id=42 and io\.berth\.role=user: give --label io\.berth\.job\.id=42 --label io\.berth\.role=user/) },

  // who
  { name: 'root is never one of *', req: { action: 'docker_ping' }, ctx: { user: 'root', groups: ['root'] }, expect: B(/^no policy applies to user 'root'/) },
  { name: 'a user without a job here', req: create((b) => { b.Labels = {}; }), ctx: NO_JOB, expect: D(/cannot be checked without the user's job, and user 'alice' has no job on this node/) },
];

function check(d: Decision, expect: Case['expect']): void {
  if (expect === 'allow') {
    assert.equal(d.allow, true, `denied: ${formatDenial(d)}`);
    return;
  }
  assert.equal(d.allow, false, `allowed by ${d.policy}`);
  if (expect.policy) assert.equal(d.policy, expect.policy, d.reason);
  assert.match(d.reason, expect.reason);
  if (expect.field) assert.equal(d.field, expect.field);
}

describe('policy engine: hpc-default against every bypass class', () => {
  it(`has at least 60 cases (${cases.length})`, () => assert.ok(cases.length >= 60));
  for (const c of cases) {
    it(`${c.expect === 'allow' ? 'allows' : 'denies'} ${c.name}`, () => check(engine.decide(c.req, c.ctx ?? ALICE), c.expect));
  }

  /** berthd's own job container, as its create request and the context berthd judges it in */
  function ownContainer(over: Partial<Parameters<typeof buildJobContainerSpec>[0]> = {}) {
    const files = path.join(root, 'state', 'jobs', '42');
    mkdirSync(files, { recursive: true });
    for (const f of ['passwd', 'group', 'berth-init']) writeFileSync(path.join(files, f), '');
    const spec = buildJobContainerSpec({
      identity: { jobId: '42', node: 'n1', uid: 2001, gid: 2001, user: 'alice', imageRef: '127.0.0.1:5000/berth/demo:1.0', imageDigest: `127.0.0.1:5000/berth/demo@sha256:${'a'.repeat(64)}`, workDir: `${home}/run`, startTime: '2026-11-29T00:00:00.000Z' },
      image: `127.0.0.1:5000/berth/demo@sha256:${'a'.repeat(64)}`, supplementaryGids: [2001, 2100], cpus: 2, memoryBytes: GiB,
      devices: ['/dev/infiniband/uverbs0'], mounts: [], initBinary: path.join(files, 'berth-init'), memlockBytes: -1,
      userFiles: { passwd: path.join(files, 'passwd'), group: path.join(files, 'group') }, ...over,
    });
    const ctx: PolicyContext = { ...ALICE, job: { ...ALICE.job!, mountPrefixes: [home, files] } };
    const req: PolicyRequest = { action: 'container_create', body: policyView(spec.body), query: { name: spec.name }, agent: true };
    return { spec, ctx, req };
  }

  it("allows berthd's own job container with berth's names and labels, and only for berthd", () => {
    const { ctx, req } = ownContainer();
    check(engine.decide(req, ctx), 'allow');
    check(engine.decide({ ...req, agent: false }, ctx), B(/the container name berth-n1-job-42 is not allowed: .*; the labels io\.berth\.role, io\.berth\.node, .* are not allowed/));
  });

  it("allows berthd's own container with --container-unshare=net,ipc,uts (no network but loopback, private IPC, the node's hostname)", () => {
    const { spec, ctx, req } = ownContainer({ unshare: ['net', 'ipc', 'uts'], hostname: 'n1.example' });
    const hc = spec.body.HostConfig as Record<string, unknown>;
    assert.deepEqual([hc.NetworkMode, hc.IpcMode, spec.body.Hostname], ['none', 'private', 'n1.example']);
    check(engine.decide(req, ctx), 'allow');
  });

  it('maps, then decides: an encoded path reaches the rules of the action dockerd runs', () => {
    const m = mapAction('POST', '/v1.41/containers%2Fcreate?name=x')!;
    check(engine.decide({ action: m.action, bodyText: JSON.stringify({ ...good(), User: '0' }) }, ALICE), D(/^User=0 is not allowed/));
  });

  it('takes {{registries}} from the site, or from the policy when it has its own', () => {
    const pull = { action: 'image_create', query: { fromImage: '127.0.0.1:5000/x' } };
    check(new PolicyEngine(hpcDefault).decide(pull, ALICE), D(/it must be an image from a registry of the site \(none is configured: registries in the site rules/));
    const own = parsePolicyFile('{"name":"own","users":["*"],"actions":["image_create"],"registries":["reg.site:443"],"payload_rules":[{"field":"fromImage","in":"query","actions":["image_create"],"registry_in":"{{registries}}"}]}', 'p.json');
    const e = new PolicyEngine(own, { registries: ['127.0.0.1:5000'] });
    check(e.decide(pull, ALICE), D(/it must be an image from reg\.site:443/, undefined, 'own'));
    // host names are case-insensitive: the same registry
    check(e.decide({ action: 'image_create', query: { fromImage: 'REG.SITE:443/x' } }, ALICE), 'allow');
    check(e.decide({ action: 'image_create', query: { fromImage: 'reg.site:4430/x' } }, ALICE), D(/is from reg\.site:4430/, undefined, 'own'));
    check(e.decide({ action: 'image_create', query: { fromImage: 'reg.site:443/team/x' } }, ALICE), 'allow');
  });

  it('says which policy denies which action and why, in one line', () => {
    const d = engine.decide(hc({ CapAdd: ['SYS_ADMIN'] }), ALICE);
    assert.equal(formatDenial(d), "policy 'hpc-default' denies container_create: HostConfig.CapAdd=[SYS_ADMIN] is not allowed");
    assert.deepEqual(d.violations, [{ field: 'HostConfig.CapAdd', reason: 'HostConfig.CapAdd=[SYS_ADMIN] is not allowed' }]);
  });

  it('reads a 1 MiB body of many keys and duplicates in linear time (dockerd forwards up to 1 MiB)', () => {
    const labels = { ...Object.fromEntries(Array.from({ length: 50000 }, (_, i) => [`l${i}`, 'v'])), 'io.berth.job.id': '42', 'io.berth.role': 'user' };
    const text = JSON.stringify({ ...good(), Labels: labels }).replace(/}$/, `,${Array.from({ length: 20000 }, () => '"Labels":{}').join(',')}}`);
    const t0 = process.hrtime.bigint();
    check(engine.decide({ action: 'container_create', bodyText: text }, ALICE), 'allow');
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    assert.ok(ms < 2000, `${ms} ms`);
  });

  it('denies, never throws, when judging fails', () => {
    const broken = new PolicyEngine(hpcDefault, { resolvePath: () => { throw new Error('EIO'); }, registries: ['127.0.0.1:5000'] });
    check(broken.decide(create(() => {}), ALICE), B(/berth could not judge the request \(EIO\)/));
  });

  it('lists every offending field of a request at once', () => {
    const d = engine.decide(hc({ Privileged: true, PidMode: 'host', Memory: 0 }), ALICE);
    assert.deepEqual(d.violations?.map((v) => v.field), ['HostConfig.Privileged', 'HostConfig.PidMode', 'HostConfig.Memory']);
    assert.equal(d.field, 'HostConfig.Privileged');
  });
});

describe('policy engine: the seed forms mean what they say', () => {
  const seed = (f: string): PolicyEngine => new PolicyEngine(parsePolicyFile(readFileSync(path.join(POLICIES, 'seed-examples', f), 'utf8'), f));
  const formA = seed('cray-form-a.json');
  const formB = seed('cray-form-b.json');
  const broker = seed('authz-broker.jsonl');
  const who = (user: string): PolicyContext => ({ user, groups: [] });
  const body = (o: unknown): PolicyRequest => ({ action: 'container_create', bodyText: JSON.stringify(o) });

  const seedCases: [string, PolicyEngine, PolicyRequest, PolicyContext, Case['expect']][] = [
    ['A: authclients may create', formA, body({ Image: 'x' }), who('authclients'), 'allow'],
    ['A: but not privileged', formA, body({ Image: 'x', HostConfig: { Privileged: true } }), who('authclients'), D(/^HostConfig\.Privileged=true is not allowed$/, 'HostConfig.Privileged', 'policy_1')],
    ['A: nor with CapAdd', formA, body({ Image: 'x', HostConfig: { CapAdd: ['SYS_ADMIN'] } }), who('authclients'), D(/^HostConfig\.CapAdd=\[SYS_ADMIN\] is not allowed$/, 'HostConfig.CapAdd', 'policy_1')],
    ['A: Privileged false is fine (absent, false, empty or zero)', formA, body({ Image: 'x', HostConfig: { Privileged: false, CapAdd: [] } }), who('authclients'), 'allow'],
    ['A: a case-variant privileged key', formA, { action: 'container_create', bodyText: '{"Image":"x","hostConfig":{"privileged":true}}' }, who('authclients'), D(/privileged=true is not allowed/, undefined, 'policy_1')],
    ['A: nothing but create', formA, { action: 'container_start' }, who('authclients'), D(/^container_start is not among the actions the policy allows$/, undefined, 'policy_1')],
    ['A: nobody else', formA, body({ Image: 'x' }), who('alice'), B(/no policy applies to user 'alice'/)],
    ['B: client may build (docker_*, image_*, container_*)', formB, { action: 'image_build' }, who('client'), 'allow'],
    ['B: and exec, start included', formB, { action: 'exec_start' }, who('client'), 'allow'],
    ['B: a privileged container, which form B does not exclude', formB, body({ Image: 'x', HostConfig: { Privileged: true } }), who('client'), 'allow'],
    ['B: but not a host user namespace', formB, body({ Image: 'x', HostConfig: { UsernsMode: 'host' } }), who('client'), D(/^HostConfig\.UsernsMode=host is not allowed$/, undefined, 'policy_1')],
    ['B: nor CapAdd', formB, body({ Image: 'x', HostConfig: { CapAdd: ['NET_ADMIN'] } }), who('client'), D(/HostConfig\.CapAdd=\[NET_ADMIN\]/, undefined, 'policy_1')],
    ['B: nor volumes (not in its families)', formB, { action: 'volume_create', bodyText: '{}' }, who('client'), D(/volume_create is not among/, undefined, 'policy_1')],
    ['broker: alice lists containers', broker, { action: 'container_list' }, who('alice'), 'allow'],
    ['broker: bob creates them', broker, body({ Image: 'x' }), who('bob'), 'allow'],
    ['broker: but nobody starts them', broker, { action: 'container_start' }, who('alice'), D(/container_start is not among/, undefined, 'policy_3')],
    ['broker: root is not alice', broker, { action: 'container_list' }, who('root'), B(/no policy applies to user 'root'/)],
  ];
  for (const [name, e, req, ctx, expect] of seedCases) it(name, () => check(e.decide(req, ctx), expect));

  it('broker: a readonly policy allows reads only', () => {
    const e = new PolicyEngine(parsePolicyFile('{"name":"policy_5","users":["alice"],"actions":["container_.*"], "readonly":true }', 'p.json'));
    check(e.decide({ action: 'container_inspect' }, who('alice')), 'allow');
    check(e.decide({ action: 'container_archive_info' }, who('alice')), 'allow');
    check(e.decide({ action: 'container_kill' }, who('alice')), D(/^the policy is read-only and container_kill is not a read \(GET or HEAD\) request$/, undefined, 'policy_5'));
    check(e.decide({ action: 'container_attach_ws' }, who('alice')), D(/read-only/, undefined, 'policy_5'));
  });
});

describe('policy engine: combining policies', () => {
  const two = (extra: string): PolicyEngine => new PolicyEngine(parsePolicyFile(`[${extra}, {"name":"ops","users":["alice"],"actions":[".*"]}]`, 'p.json'));

  it("deny overrides allow: another policy's deny_actions", () => {
    const e = two('{"name":"no-build","users":["*"],"deny_actions":["image_build"]}');
    check(e.decide({ action: 'image_build' }, { user: 'alice', groups: [] }), D(/image_build is denied by the policy/, undefined, 'no-build'));
    check(e.decide({ action: 'image_list' }, { user: 'alice', groups: [] }), 'allow');
  });

  it("deny overrides allow: another policy's payload rule", () => {
    const e = two('{"name":"no-priv","groups":["hpc"],"deny_payloads":["Privileged"]}');
    check(e.decide({ action: 'container_create', bodyText: '{"HostConfig":{"Privileged":true}}' }, { user: 'alice', groups: ['hpc'] }), D(/HostConfig\.Privileged=true/, undefined, 'no-priv'));
    check(e.decide({ action: 'container_create', bodyText: '{"HostConfig":{"Privileged":true}}' }, { user: 'alice', groups: [] }), 'allow');
  });

  it('a group policy applies to its members, never to root', () => {
    const e = new PolicyEngine(parsePolicyFile('{"name":"g","groups":["hpc","root"],"actions":["docker_ping"]}', 'p.json'));
    check(e.decide({ action: 'docker_ping' }, { user: 'carol', groups: ['hpc'] }), 'allow');
    check(e.decide({ action: 'docker_ping' }, { user: 'dave', groups: ['users'] }), B(/no policy applies to user 'dave'/));
    check(e.decide({ action: 'docker_ping' }, { user: 'root', groups: ['root'] }), B(/no policy applies to user 'root'/));
  });

  it('root is matched when named', () => {
    const e = new PolicyEngine(parsePolicyFile('{"name":"admins","users":["root"],"actions":["*"]}', 'p.json'));
    check(e.decide({ action: 'image_build' }, { user: 'root', groups: [] }), 'allow');
    check(e.decide({ action: 'image_build' }, { user: 'alice', groups: [] }), B(/no policy applies/));
  });
});
