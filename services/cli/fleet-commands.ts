// What each admin command asks a node and how the answers print: `berth status`, `jobs`,
// `containers`, `images`, `prune`, `drain`, `resume`. The fan-out itself is fleet-run.ts.
import type { GetStatusResponse__Output } from '../shared/gen/berth/v1/GetStatusResponse';
import type { ListContainersResponse__Output } from '../shared/gen/berth/v1/ListContainersResponse';
import type { ListImagesResponse__Output } from '../shared/gen/berth/v1/ListImagesResponse';
import type { ListJobsResponse__Output } from '../shared/gen/berth/v1/ListJobsResponse';
import type { PruneImagesResponse__Output } from '../shared/gen/berth/v1/PruneImagesResponse';
import type { SetDrainResponse__Output } from '../shared/gen/berth/v1/SetDrainResponse';
import { unaryCallAbortable } from './agent-client';
import type { Answer, FleetCommand } from './fleet-run';
import { shortState, table } from './format';

function mb(bytes: number): string {
  return `${(bytes / 1e6).toFixed(1)} MB`;
}

export function duration(seconds: number): string {
  const d = Math.floor(seconds / 86400);
  const h = Math.floor((seconds % 86400) / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  if (d) return `${d}d${h}h`;
  if (h) return `${h}h${m}m`;
  return m ? `${m}m${seconds % 60}s` : `${seconds}s`;
}

const QUERY_TIMEOUT_MS = 10_000;

export const statusCommand: FleetCommand<GetStatusResponse__Output> = {
  name: 'status',
  method: 'GetStatus',
  defaultTimeoutMs: QUERY_TIMEOUT_MS,
  call: (c, md, ms, signal) => unaryCallAbortable(c.GetStatus.bind(c), {}, md, ms, signal),
  render: (answers) => table(['NODE', 'STATE', 'VERSION', 'UPTIME', 'JOBS', 'CONTAINERS', 'IMAGES', 'CACHE', 'DISK', 'DOCKERD', 'RULES', 'CHECK', 'REASON'],
    answers.map(({ node, value: s }) => [
      node, s.state.replace(/^AGENT_STATE_/, '').toLowerCase(), s.version, duration(s.uptimeSeconds), String(s.jobsRunning), String(s.containers),
      String(s.images), mb(s.imageCacheBytes), `${s.diskUsagePercent.toFixed(1)}%`, s.dockerdReachable ? 'ok' : 'down',
      s.siteRulesSha256 ? s.siteRulesSha256.slice(0, 12) : '-', checkSummary(s.nodeProblems ?? []),
      [s.drain?.drained ? `drained: ${s.drain.reason} (${s.drain.by}, ${s.drain.since})` : '', s.stateDetail, s.dockerdError].filter(Boolean).join('; '),
    ]))
    // the node check's findings in full, one line each
    + answers.flatMap(({ node, value: s }) => (s.nodeProblems ?? []).map((p) => `${node}: ${p.blocksJobs ? 'blocks container jobs' : 'warning'}: ${p.path} ${p.problem} (${p.setting})\n`)).join(''),
};

function checkSummary(problems: { blocksJobs: boolean }[]): string {
  const blocking = problems.filter((p) => p.blocksJobs).length;
  const warnings = problems.length - blocking;
  if (problems.length === 0) return 'ok';
  return [blocking ? `${blocking} blocking` : '', warnings ? `${warnings} warning${warnings > 1 ? 's' : ''}` : ''].filter(Boolean).join(', ');
}

export const jobsCommand: FleetCommand<ListJobsResponse__Output> = {
  name: 'jobs',
  method: 'ListJobs',
  defaultTimeoutMs: QUERY_TIMEOUT_MS,
  call: (c, md, ms, signal) => unaryCallAbortable(c.ListJobs.bind(c), {}, md, ms, signal),
  render: (answers) => table(['NODE', 'JOBID', 'USER', 'UID', 'STATE', 'STEPS', 'IMAGE', 'STARTED'],
    answers.flatMap(({ node, value }) => value.jobs.map((j) => [node, j.jobId, j.user, String(j.uid), shortState(j.state), String(j.steps.length), j.image, j.startTime]))),
};

export const containersCommand: FleetCommand<ListContainersResponse__Output> = {
  name: 'containers',
  method: 'ListContainers',
  defaultTimeoutMs: QUERY_TIMEOUT_MS,
  call: (c, md, ms, signal) => unaryCallAbortable(c.ListContainers.bind(c), {}, md, ms, signal),
  render: (answers) => table(['NODE', 'KIND', 'JOBID', 'USER', 'STATE', 'NAME', 'ID', 'IMAGE'],
    answers.flatMap(({ node, value }) => value.containers.map((x) => [
      node, x.kind.replace(/^CONTAINER_KIND_/, '').toLowerCase(), x.jobId, x.user, x.state, x.name || '-', x.id.slice(0, 12), x.image || '-',
    ]))),
};

export const imagesCommand: FleetCommand<ListImagesResponse__Output> = {
  name: 'images',
  method: 'ListImages',
  defaultTimeoutMs: 20_000,
  call: (c, md, ms, signal) => unaryCallAbortable(c.ListImages.bind(c), {}, md, ms, signal),
  render: (answers) => table(['NODE', 'IMAGE', 'ID', 'SIZE', 'IN USE', 'LAST USED', 'CREATED'],
    answers.flatMap(({ node, value }) => value.images.map((i) => [
      node, i.repoDigests[0] ?? i.repoTags[0] ?? '<none>', i.id.slice(7, 19), mb(i.sizeBytes), i.inUse ? 'yes' : 'no', i.lastUsed || '-', i.created,
    ])))
    + answers.map(({ node, value }) => `disk used by dockerd's file system on ${node}: ${value.diskUsagePercent.toFixed(1)} %\n`).join(''),
};

export function pruneCommand(opts: { dryRun: boolean; all: boolean }): FleetCommand<PruneImagesResponse__Output> {
  const verb = opts.dryRun ? 'would remove' : 'removed';
  return {
    name: 'prune',
    method: 'PruneImages',
    defaultTimeoutMs: 300_000,
    call: (c, md, ms, signal) => unaryCallAbortable(c.PruneImages.bind(c), { dryRun: opts.dryRun, allUnused: opts.all }, md, ms, signal),
    render: (answers: Answer<PruneImagesResponse__Output>[]) => answers.map(({ node, value: r }) => {
      if (r.skipped) return `${node}: nothing to do: ${r.skipped} (disk ${r.diskUsagePercent.toFixed(1)} % used); use --all to remove every unused image\n`;
      return r.removed.map((i) => `${node}: ${verb} ${i.repoDigests[0] ?? i.id} (${mb(i.sizeBytes)})\n`).join('')
        + `${node}: ${verb} ${r.removed.length} image(s), ${mb(r.freedBytes)}\n`;
    }).join(''),
  };
}

export function drainCommand(drain: boolean, reason: string): FleetCommand<SetDrainResponse__Output> {
  return {
    name: drain ? 'drain' : 'resume',
    method: 'SetDrain',
    defaultTimeoutMs: QUERY_TIMEOUT_MS,
    call: (c, md, ms, signal) => unaryCallAbortable(c.SetDrain.bind(c), { drain, reason }, md, ms, signal),
    render: (answers) => table(['NODE', 'STATE', 'CHANGED', 'SINCE', 'BY', 'REASON'],
      answers.map(({ node, value: r }) => [
        node, r.drain?.drained ? 'drained' : 'accepting', r.changed ? 'yes' : 'no', r.drain?.since || '-', r.drain?.by || '-', r.drain?.reason || '-',
      ])),
  };
}
