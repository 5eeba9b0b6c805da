// `berth status` for one node: what the agent is doing and what it holds. Answered while
// recovering too, so each question to dockerd has its own short deadline and a dockerd that
// does not answer is reported, not waited for.
import type { AgentPhase } from '../lifecycle';
import type { JobRecord } from '../jobs/job-record';
import type { DrainState } from './drain-store';
import type { ManagedContainerView } from './managed-containers';
import type { NodeProblem } from './node-check';

export type AgentStateName = 'RECOVERING' | 'SERVING' | 'DRAINING' | 'STOPPING';

export interface NodeStatusSources {
  node: string;
  version: string;
  startedAt: Date;
  lifecycle: { phase: AgentPhase; detail: string };
  drain: () => DrainState;
  jobs: () => JobRecord[];
  ping: () => Promise<unknown>;
  containers: () => Promise<ManagedContainerView[]>;
  images: () => Promise<{ images: { sizeBytes: number }[]; usagePercent: number }>;
  /** the site rules in force (their file and sha256) */
  siteRules?: () => { file: string; sha256: string };
  /** the node check's findings, checked afresh */
  nodeProblems?: () => NodeProblem[];
  now?: () => Date;
  /** per question to dockerd */
  dockerTimeoutMs?: number;
}

export interface NodeStatus {
  node: string;
  version: string;
  state: AgentStateName;
  stateDetail: string;
  drain: DrainState;
  startedAt: string;
  uptimeSeconds: number;
  jobsRunning: number;
  jobsTotal: number;
  containers: number;
  images: number;
  imageCacheBytes: number;
  diskUsagePercent: number;
  dockerdReachable: boolean;
  dockerdError: string;
  siteRulesFile: string;
  siteRulesSha256: string;
  nodeProblems: NodeProblem[];
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not answer within ${ms} ms`)), ms);
  });
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}

/** The lifecycle's shutdown phase is called "draining" inside berthd; admins see STOPPING. */
export function agentState(phase: AgentPhase, drained: boolean): AgentStateName {
  if (phase === 'recovering') return 'RECOVERING';
  if (phase === 'draining') return 'STOPPING';
  return drained ? 'DRAINING' : 'SERVING';
}

export async function nodeStatus(s: NodeStatusSources): Promise<NodeStatus> {
  const now = (s.now ?? (() => new Date()))();
  const ms = s.dockerTimeoutMs ?? 3000;
  const drain = s.drain();
  const jobs = s.jobs();
  let dockerdError = '';
  let containers = 0;
  let images: { sizeBytes: number }[] = [];
  let usagePercent = 0;
  try {
    await withTimeout(Promise.resolve(s.ping()), ms, 'dockerd');
    const [c, i] = await Promise.all([withTimeout(s.containers(), ms, 'dockerd (containers)'), withTimeout(s.images(), ms, 'dockerd (images)')]);
    containers = c.length;
    images = i.images;
    usagePercent = i.usagePercent;
  } catch (err) {
    dockerdError = err instanceof Error ? err.message : String(err);
  }
  return {
    node: s.node,
    version: s.version,
    state: agentState(s.lifecycle.phase, drain.drained),
    stateDetail: s.lifecycle.phase === 'serving' ? '' : s.lifecycle.detail,
    drain,
    startedAt: s.startedAt.toISOString(),
    uptimeSeconds: Math.max(0, Math.floor((now.getTime() - s.startedAt.getTime()) / 1000)),
    jobsRunning: jobs.filter((j) => j.state === 'RUNNING').length,
    jobsTotal: jobs.length,
    containers,
    images: images.length,
    imageCacheBytes: images.reduce((a, i) => a + i.sizeBytes, 0),
    diskUsagePercent: usagePercent,
    dockerdReachable: dockerdError === '',
    dockerdError,
    siteRulesFile: s.siteRules?.().file ?? '',
    siteRulesSha256: s.siteRules?.().sha256 ?? '',
    nodeProblems: s.nodeProblems?.() ?? [],
  };
}
