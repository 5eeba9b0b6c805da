// What every job needs from this node, checked when berthd starts, on SIGHUP and before
// each container it makes: the site mounts' sources, berth-init, Slurm's TaskProlog and
// spool directory, the policy file, dockerd's runtime finding berthd's runtime gate, and the
// free space on dockerd's data-root (a warning: a pull that does not fit is a node fault).
// A finding that blocks jobs (nothing could start here) is a node fault, once: the first job
// that needs a container fails with the reason, and berthd drains itself for container jobs
// with that reason (drain-store.ts), so later prologues are refused with it too until an
// admin fixes the node and runs `berth resume`. Warnings are logged and shown only.
import { accessSync, constants, statfsSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { BerthError } from '../../shared/errors';
import { DEFAULT_RUN_DIR } from '../../shared/paths';
import { ruleSource, type SiteRules } from '../../shared/site-rules';
import { protectedPaths } from '../../shared/site-rules-check';
import type { AgentConfig } from '../config';
import type { Logger } from '../logger';
import type { DrainStore } from './drain-store';

export interface NodeProblem {
  /** the setting and where it is written: "site rules /etc/berth/site.json, mounts.0.source" */
  setting: string;
  /** the path on this node */
  path: string;
  /** what is wrong, and what it breaks */
  problem: string;
  /** true: no container can be made here until it is fixed */
  blocksJobs: boolean;
}

export type PathKind = 'file' | 'directory' | 'socket' | 'char-device' | 'other';

/** The file system as the check sees it; a test gives a fake one. */
export interface NodeFs {
  /** what is at p, symbolic links followed; undefined when nothing is */
  kind(p: string): PathKind | undefined;
  executable(p: string): boolean;
  readable(p: string): boolean;
  /** the size and free space (for root's processes less the reserve: what a pull can use) of the file system holding p */
  space?(p: string): { totalBytes: number; freeBytes: number } | undefined;
}

export const REAL_FS: NodeFs = {
  kind: (p) => {
    try {
      const st = statSync(p);
      if (st.isFile()) return 'file';
      if (st.isDirectory()) return 'directory';
      if (st.isSocket()) return 'socket';
      if (st.isCharacterDevice()) return 'char-device';
      return 'other';
    } catch {
      return undefined;
    }
  },
  executable: (p) => {
    try {
      accessSync(p, constants.X_OK);
      return true;
    } catch {
      return false;
    }
  },
  readable: (p) => {
    try {
      accessSync(p, constants.R_OK);
      return true;
    } catch {
      return false;
    }
  },
  space: (p) => {
    try {
      const st = statfsSync(p);
      return { totalBytes: st.blocks * st.bsize, freeBytes: st.bavail * st.bsize };
    } catch {
      return undefined;
    }
  },
};

export type CheckedConfig = Pick<AgentConfig, 'node' | 'runDir' | 'stateDir' | 'dockerHost' | 'initBinary' | 'rdmaDevices' | 'taskProlog' | 'slurmdSpoolDir' | 'authz' | 'ownPaths'>;

export interface NodeCheckSubject {
  /** berthd's config file, for messages ('' = flags only) */
  configFile: string;
  config: CheckedConfig;
  rules: SiteRules;
  /** sha256 of the site rules file as it is on disk now ('' = unreadable) */
  rulesOnDisk?: string;
  /** dockerd's data-root (its DockerRootDir, once dockerd answered) and the image GC's high watermark */
  engineDisk?: { dataRoot: string; highPercent: number };
}

/** "/scratch does not exist; … (site rules F, mounts.0.source)" */
export function describeProblem(p: NodeProblem): string {
  return `${p.path} ${p.problem} (${p.setting})`;
}

function under(p: string, prefix: string): boolean {
  return p === prefix || p.startsWith(prefix.endsWith('/') ? prefix : prefix + '/');
}

/** The findings from the file system. */
export function checkNode(s: NodeCheckSubject, fs: NodeFs = REAL_FS): NodeProblem[] {
  const { config, rules } = s;
  const inConfig = (key: string): string => `${s.configFile || 'berthd flags'}, ${key}`;
  const out: NodeProblem[] = [];
  const block = (setting: string, p: string, problem: string): void => void out.push({ setting, path: p, problem, blocksJobs: true });
  const warn = (setting: string, p: string, problem: string): void => void out.push({ setting, path: p, problem, blocksJobs: false });

  rules.mounts.forEach((m, i) => {
    const kind = fs.kind(m.source);
    const setting = ruleSource(rules, `mounts.${i}.source`);
    if (kind === undefined) block(setting, m.source, `does not exist on ${config.node}; every job container mounts it at ${m.target}: create or mount it, or remove it from the site rules`);
    else if (kind !== 'directory' && kind !== 'file') block(setting, m.source, `is a ${kind}, not a directory or a file; every job container mounts it at ${m.target}`);
  });

  const init = fs.kind(config.initBinary);
  if (init === undefined) block(inConfig('initBinary'), config.initBinary, 'does not exist; every job container runs it as its first process: install berth (scripts/install.sh) or fix initBinary');
  else if (init !== 'file') block(inConfig('initBinary'), config.initBinary, `is a ${init}, not a file; every job container runs it as its first process`);
  else if (!fs.executable(config.initBinary)) block(inConfig('initBinary'), config.initBinary, 'is not executable; every job container runs it as its first process');

  for (const d of config.rdmaDevices) {
    if (path.basename(d).includes('*')) continue;
    const kind = fs.kind(d);
    if (kind !== undefined && kind !== 'char-device') warn(inConfig('rdmaDevices'), d, `is a ${kind}, not a device: job containers run without it`);
  }

  if (fs.kind(config.taskProlog) === undefined) {
    warn(inConfig('taskProlog'), config.taskProlog, "does not exist: if slurm.conf's TaskProlog names it, native container steps fail (slurmstepd runs it inside the container)");
  }
  if (fs.kind(config.slurmdSpoolDir) !== 'directory') {
    warn(inConfig('slurmdSpoolDir'), config.slurmdSpoolDir, "is not a directory: sbatch --container-image jobs cannot run their batch script in the container; it must be slurm.conf's SlurmdSpoolDir (%n resolved)");
  }

  if (config.authz) {
    if (!fs.readable(config.authz.policyFile)) {
      warn(inConfig('authz.policyFile'), config.authz.policyFile, 'cannot be read now: the policy berthd loaded stays in force, and a reload fails until the file is back');
    }
    if (rules.registries.length === 0) {
      warn(ruleSource(rules, 'registries'), rules.file || '-', 'lists no registry: a policy that uses {{registries}} refuses every image, users\' pulls and the job containers too');
    }
  }

  // what berthd refuses to let jobs mount must be in the rules submit-check reads, or the refusal comes only at the prolog
  const guarded = protectedPaths(rules).map((g) => g.path);
  for (const { path: p, key } of config.ownPaths) {
    if (!guarded.some((g) => under(p, g))) {
      warn(ruleSource(rules, 'protectedPaths'), p, `(berthd's ${key}) is not under a path the site rules deny or protect: berth submit-check lets a job ask to mount it and berthd refuses it only at the prolog; add it to protectedPaths`);
    }
  }

  // a full engine disk fails pulls and container starts with DISK_FULL, a node fault that drains the node:
  // say so before it happens (the text stays the same while the figure moves, so it is logged once)
  const space = s.engineDisk && fs.space?.(s.engineDisk.dataRoot);
  if (s.engineDisk && space && space.totalBytes > 0 && 100 * (space.totalBytes - space.freeBytes) / space.totalBytes >= s.engineDisk.highPercent) {
    warn(inConfig('imageGc.highPercent'), s.engineDisk.dataRoot, `(dockerd's data-root) is fuller than the image GC's high watermark (${s.engineDisk.highPercent}%): `
      + 'an image or a container that does not fit fails its job\'s prolog with DISK_FULL and drains the node; free space (berth prune --all removes unused images) or give dockerd a bigger disk');
  }

  if (rules.file && s.rulesOnDisk !== undefined && s.rulesOnDisk !== rules.sha256) {
    warn('site rules', rules.file, s.rulesOnDisk
      ? `changed on disk since berthd read it (sha256 ${rules.sha256.slice(0, 12)} in force, ${s.rulesOnDisk.slice(0, 12)} on disk): reload berthd (systemctl reload berthd) so that it judges jobs as berth submit-check now does`
      : 'cannot be read any more: berth submit-check fails every container job on this host; berthd keeps the rules it read');
  }
  return out;
}

export interface DockerRuntimes {
  defaultRuntime: string;
  runtimes: Record<string, { path: string; runtimeArgs: string[] }>;
}

/** The findings from dockerd's runtimes: its default runtime, when it is berth-runc, must reach this berthd's runtime gate. */
export function checkDockerRuntime(config: CheckedConfig & { configFile?: string }, info: DockerRuntimes, host = os.hostname().split('.')[0] ?? '', fs: NodeFs = REAL_FS): NodeProblem[] {
  const out: NodeProblem[] = [];
  const ours = path.join(config.runDir, config.node, 'runtime.sock');
  const def = info.runtimes[info.defaultRuntime];
  const setting = "dockerd's daemon.json, default-runtime";
  if (def && path.basename(def.path) === 'berth-runc') {
    const arg = def.runtimeArgs.find((a) => a.startsWith('--berth-socket='));
    const theirs = arg ? arg.slice('--berth-socket='.length) : path.join(DEFAULT_RUN_DIR, host, 'runtime.sock');
    if (theirs !== ours) {
      const fix = `give "runtimeArgs": ["--berth-socket=${ours}"]`;
      const where = `dockerd's daemon.json, runtimes.${info.defaultRuntime}.runtimeArgs`;
      // nothing there: berth-runc refuses every start; another berthd's gate: containers start, judged by a berthd that does not know them
      if (fs.kind(theirs) !== 'socket') out.push({ setting: where, path: theirs, problem: `is where berth-runc asks for berthd's runtime gate, but nothing listens there (this berthd's gate is ${ours}): every container start fails; ${fix}`, blocksJobs: true });
      else out.push({ setting: where, path: theirs, problem: `is where berth-runc asks for a runtime gate, another berthd's (this one's is ${ours}): this berthd's containers start without their job's cgroup and pinned binds; ${fix}`, blocksJobs: false });
    }
  } else if (config.authz) {
    out.push({ setting, path: def?.path ?? info.defaultRuntime, problem: `is dockerd's default runtime (${info.defaultRuntime}), not berth-runc: containers are not put in their job's cgroup nor their binds pinned as the job's user (docs/security.md); set "default-runtime" to berth-runc's runtime`, blocksJobs: false });
  }
  if (config.authz && config.authz.runtime !== info.defaultRuntime) {
    out.push({ setting: `${config.configFile || 'berthd.json'}, authz.runtime`, path: config.authz.runtime, problem: `is not dockerd's default runtime (${info.defaultRuntime}): users' containers are refused; make them the same`, blocksJobs: false });
  }
  return out;
}

export const NODE_CHECK_BY = 'berthd node check';

/**
 * The node check's findings over time: runs the file-system check on demand, keeps
 * dockerd's last answer, logs what changed, and turns a blocking finding into the node's
 * drain (once) and the job's refusal.
 */
export class NodeCheck {
  private fsProblems: NodeProblem[] = [];
  private runtimeProblems: NodeProblem[] = [];
  private logged = new Set<string>();

  constructor(private readonly d: { node: string; check: () => NodeProblem[]; drain: DrainStore; log: Logger }) {}

  /** Runs the file-system check; logs every finding when asked to (start, reload) or when they changed. */
  run(logAlways = false): NodeProblem[] {
    this.fsProblems = this.d.check();
    this.report(logAlways);
    return this.problems();
  }

  setRuntimeProblems(p: NodeProblem[]): void {
    this.runtimeProblems = p;
    this.report(false);
  }

  problems(): NodeProblem[] {
    return [...this.fsProblems, ...this.runtimeProblems];
  }

  /** Before a container is made: a blocking finding drains the node for container jobs and refuses the job. */
  assertReady(jobId: string): void {
    const blocking = this.run().filter((p) => p.blocksJobs);
    if (blocking.length === 0) return;
    const what = blocking.map(describeProblem).join('; ');
    const reason = `berth node check: ${what}`;
    const s = this.d.drain.get();
    if (!s.drained || (s.by === NODE_CHECK_BY && s.reason !== reason)) {
      this.d.drain.drain(reason, NODE_CHECK_BY);
      this.d.log.error('node drained for container jobs: it lacks what every container needs', { job: jobId, reason });
    }
    throw new BerthError('NODE_DRAINED', `node ${this.d.node} cannot make containers: ${what}. berthd has drained the node for container jobs; job ${jobId} was not started here. Once it is fixed an admin runs: berth resume --nodes ${this.d.node}`);
  }

  /** Logs the findings: all of them when asked (start, reload), else those new since the last report, and when all are gone. */
  private report(logAlways: boolean): void {
    const all = this.problems();
    const key = (p: NodeProblem): string => `${p.setting}\0${p.path}\0${p.problem}`;
    const seen = this.logged;
    this.logged = new Set(all.map(key));
    if (all.length === 0) {
      if (seen.size === 0 && !logAlways) return;
      this.d.log.info(seen.size ? 'node check passes now' : 'node check passed', { drained: this.d.drain.get().drained });
      if (seen.size && this.d.drain.get().by === NODE_CHECK_BY) this.d.log.warn(`the node is still drained by the node check; end it with: berth resume --nodes ${this.d.node}`);
      return;
    }
    for (const p of all) {
      if (!logAlways && seen.has(key(p))) continue;
      const fields = { setting: p.setting, path: p.path, problem: p.problem };
      if (p.blocksJobs) this.d.log.error('node check: container jobs cannot run here until this is fixed', fields);
      else this.d.log.warn('node check', fields);
    }
  }
}
