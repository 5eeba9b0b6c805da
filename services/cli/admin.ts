// `berth job ID` and `berth docker-env`: one job on one node's agent, for admins (root, any
// job) and users (their own jobs, munge-authenticated). The many-node commands are fleet-*.ts.
import type { Metadata } from '@grpc/grpc-js';
import os from 'node:os';
import type { Job__Output } from '../shared/gen/berth/v1/Job';
import type { GetJobResponse__Output } from '../shared/gen/berth/v1/GetJobResponse';
import { agentTarget, callMetadata, connect, describeGrpcError, unaryCall } from './agent-client';
import { shortState, table } from './format';
import type { JobId } from '../shared/ids';

export function defaultNode(env: Record<string, string | undefined>): string {
  return env.SLURMD_NODENAME || os.hostname().split('.')[0] || 'localhost';
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

/** `berth docker-env`: shell exports that point the docker CLI at this node's dockerd as the job's user. */
export function dockerEnv(node: string, jobId: JobId, out: (s: string) => void): Promise<number> {
  return query('docker-env', node, 'GetJob', jobId, async (client, md) => {
    const res = await unaryCall<object, GetJobResponse__Output>(client.GetJob.bind(client), { jobId }, md, 10_000);
    if (!res.job?.dockerHost) throw new Error(`Docker access is not enabled on node ${node} (berthd config: authz)`);
    return `export DOCKER_HOST=${res.job.dockerHost}\nunset DOCKER_TLS_VERIFY DOCKER_CERT_PATH\n`;
  }, out);
}

export function showJob(node: string, jobId: JobId, json: boolean, out: (s: string) => void): Promise<number> {
  return query('job', node, 'GetJob', jobId, async (client, md) => {
    const res = await unaryCall<object, GetJobResponse__Output>(client.GetJob.bind(client), { jobId }, md, 10_000);
    if (!res.job) throw new Error(`no job ${jobId}`);
    return json ? JSON.stringify(res.job, null, 2) + '\n' : jobDetail(res.job);
  }, out);
}
