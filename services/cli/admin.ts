// `berth jobs` and `berth job ID`: what a node's agent holds, for admins (root, any job) and
// users (their own jobs, munge-authenticated).
import type { Metadata } from '@grpc/grpc-js';
import os from 'node:os';
import type { Job__Output } from '../shared/gen/berth/v1/Job';
import type { GetJobResponse__Output } from '../shared/gen/berth/v1/GetJobResponse';
import type { ListJobsResponse__Output } from '../shared/gen/berth/v1/ListJobsResponse';
import type { ListImagesResponse__Output } from '../shared/gen/berth/v1/ListImagesResponse';
import type { PruneImagesResponse__Output } from '../shared/gen/berth/v1/PruneImagesResponse';
import { agentTarget, callMetadata, connect, describeGrpcError, unaryCall } from './agent-client';
import { shortState, table } from './format';

export function defaultNode(env: Record<string, string | undefined>): string {
  return env.SLURMD_NODENAME || os.hostname().split('.')[0] || 'localhost';
}

function jobsTable(jobs: Job__Output[]): string {
  return table(['JOBID', 'NODE', 'USER', 'UID', 'STATE', 'STEPS', 'IMAGE', 'STARTED'],
    jobs.map((j) => [j.jobId, j.node, j.user, String(j.uid), shortState(j.state), String(j.steps.length), j.image, j.startTime]));
}

function jobDetail(j: Job__Output): string {
  const head = [
    `job ${j.jobId} on ${j.node}: ${shortState(j.state)}${j.error ? ` (${j.error})` : ''}`,
    `  user       ${j.user} (uid ${j.uid}, gid ${j.gid})`,
    `  image      ${j.image}`,
    `  digest     ${j.imageDigest}`,
    `  container  ${j.containerName} ${j.containerId.slice(0, 12)}`,
    `  work dir   ${j.workDir}`,
    `  started    ${j.startTime}`,
  ].join('\n') + '\n';
  if (j.steps.length === 0) return head + '  steps      none\n';
  return head + '\n' + table(['STEP', 'TASK', 'STATE', 'EXIT', 'SIGNAL', 'START', 'END', 'COMMAND'],
    j.steps.map((s) => [s.stepId, String(s.taskId), shortState(s.state), String(s.exitCode), s.signal, s.startTime, s.endTime, s.argv.join(' ')]));
}

type AgentClient = ReturnType<typeof connect>;

/** One query to one node's agent: authenticated, closed afterwards, errors said in one line. */
async function query(command: string, node: string, method: string, jobId: string, ask: (client: AgentClient, md: Metadata) => Promise<string>, out: (s: string) => void): Promise<number> {
  const target = agentTarget(node);
  const client = connect(target);
  try {
    out(await ask(client, await callMetadata(target, method, jobId)));
    return 0;
  } catch (err) {
    process.stderr.write(`berth ${command}: ${describeGrpcError(err, target)}\n`);
    return 1;
  } finally {
    client.close();
  }
}

export function listJobs(node: string, json: boolean, out: (s: string) => void): Promise<number> {
  return query('jobs', node, 'ListJobs', '', async (client, md) => {
    const res = await unaryCall<object, ListJobsResponse__Output>(client.ListJobs.bind(client), {}, md, 10_000);
    return json ? JSON.stringify(res.jobs, null, 2) + '\n' : jobsTable(res.jobs);
  }, out);
}

/** `berth docker-env`: shell exports that point the docker CLI at this node's dockerd as the job's user. */
export function dockerEnv(node: string, jobId: string, out: (s: string) => void): Promise<number> {
  return query('docker-env', node, 'GetJob', jobId, async (client, md) => {
    const res = await unaryCall<object, GetJobResponse__Output>(client.GetJob.bind(client), { jobId }, md, 10_000);
    if (!res.job?.dockerHost) throw new Error(`Docker access is not enabled on node ${node} (berthd config: authz)`);
    return `export DOCKER_HOST=${res.job.dockerHost}\nexport DOCKER_TLS_VERIFY=1\nexport DOCKER_CERT_PATH=${res.job.dockerCertPath}\n`;
  }, out);
}

function mb(bytes: number): string {
  return `${(bytes / 1e6).toFixed(1)} MB`;
}

export function listImages(node: string, json: boolean, out: (s: string) => void): Promise<number> {
  return query('images', node, 'ListImages', '', async (client, md) => {
    const res = await unaryCall<object, ListImagesResponse__Output>(client.ListImages.bind(client), {}, md, 20_000);
    if (json) return JSON.stringify(res, null, 2) + '\n';
    return table(['IMAGE', 'ID', 'SIZE', 'IN USE', 'LAST USED', 'CREATED'],
      res.images.map((i) => [i.repoDigests[0] ?? i.repoTags[0] ?? '<none>', i.id.slice(7, 19), mb(i.sizeBytes), i.inUse ? 'yes' : 'no', i.lastUsed || '-', i.created]))
      + `disk used by dockerd's file system on ${node}: ${res.diskUsagePercent.toFixed(1)} %\n`;
  }, out);
}

export function pruneImages(node: string, opts: { dryRun: boolean; all: boolean; json: boolean }, out: (s: string) => void): Promise<number> {
  return query('prune', node, 'PruneImages', '', async (client, md) => {
    const res = await unaryCall<object, PruneImagesResponse__Output>(client.PruneImages.bind(client), { dryRun: opts.dryRun, allUnused: opts.all }, md, 300_000);
    if (opts.json) return JSON.stringify(res, null, 2) + '\n';
    if (res.skipped) return `nothing to do on ${node}: ${res.skipped} (disk ${res.diskUsagePercent.toFixed(1)} % used); use --all to remove every unused image\n`;
    const verb = opts.dryRun ? 'would remove' : 'removed';
    return res.removed.map((i) => `${verb} ${i.repoDigests[0] ?? i.id} (${mb(i.sizeBytes)})\n`).join('')
      + `${verb} ${res.removed.length} image(s), ${mb(res.freedBytes)} on ${node}\n`;
  }, out);
}

export function showJob(node: string, jobId: string, json: boolean, out: (s: string) => void): Promise<number> {
  return query('job', node, 'GetJob', jobId, async (client, md) => {
    const res = await unaryCall<object, GetJobResponse__Output>(client.GetJob.bind(client), { jobId }, md, 10_000);
    if (!res.job) throw new Error(`no job ${jobId}`);
    return json ? JSON.stringify(res.job, null, 2) + '\n' : jobDetail(res.job);
  }, out);
}
