// The user's --container-* options turned into what the job container gets, after the
// site's rules (shared/site-rules-check.ts, the same functions `berth submit-check` runs at
// submit): mount sources the user can reach themselves (real paths, outside the site's
// denied prefixes and protected paths and berthd's own directories), home and read-only by
// the site's defaults unless the user said otherwise, and no target twice.
import { existsSync } from 'node:fs';
import { BerthError } from '../../shared/errors';
import type { ContainerOptions } from '../../shared/container-options';
import { isTmpfs, OptionError } from '../../shared/container-options';
import { reachablePath } from '../../shared/path-access';
import { judgeMounts, type PathProbe, type ProtectedPath, REAL_PATHS } from '../../shared/site-rules-check';
import type { SiteRules } from '../../shared/site-rules';
import type { SiteMount } from './job-container-spec';

export interface UserOptionRules {
  site: SiteRules;
  /** berth's and dockerd's own paths on this node: never mountable, whatever the site rules say */
  ownPaths: readonly ProtectedPath[];
  probe?: PathProbe;
}

export interface AppliedOptions {
  /** user mounts with real sources, then home */
  mounts: SiteMount[];
  readOnly: boolean;
  workdir: string;
  envNames: string[];
  name: string;
  /** container directories the user's mounts provide */
  mountTargets: string[];
  /** host paths the job may bind (for the site policy's {{mount_prefixes}}) */
  mountSources: string[];
}

export function applyUserOptions(jobId: string, o: ContainerOptions | undefined, who: { uid: number; gids: number[]; home: string }, workDir: string, rules: UserOptionRules): AppliedOptions {
  const refuse = (msg: string): never => {
    throw new BerthError('MOUNT_REFUSED', `job ${jobId}: ${msg}`);
  };
  let mounts: SiteMount[] = [];
  try {
    mounts = judgeMounts(o?.mounts ?? [], rules.site, { uid: who.uid, gids: who.gids }, rules.ownPaths, rules.probe ?? REAL_PATHS);
  } catch (err) {
    if (err instanceof OptionError) refuse(err.message);
    throw err;
  }
  // a mount of the user's at the job's working directory replaces its bind (job-container-spec.ts)
  const taken = new Set<string>([...rules.site.mounts.map((m) => m.target), ...mounts.map((m) => m.target)]);
  if (workDir) taken.add(workDir);
  const mountHome = o?.mountHome ?? rules.site.containerDefaults.mountHome;
  if (mountHome && who.home && who.home !== '/' && !taken.has(who.home)) {
    let reachable = false;
    try {
      reachable = existsSync(who.home) && reachablePath(who.home, { uid: who.uid, gids: who.gids }, 'your home directory') !== '';
    } catch (err) {
      if (o?.mountHome) refuse(`--container-mount-home: ${(err as Error).message}`);
    }
    if (reachable) mounts.push({ source: who.home, target: who.home, readOnly: false });
    else if (o?.mountHome) refuse(`--container-mount-home: your home directory ${who.home} does not exist on this node`);
  }
  return {
    mounts,
    readOnly: o?.readOnly ?? rules.site.containerDefaults.readOnly,
    workdir: o?.workdir ?? '',
    envNames: o?.envNames ?? [],
    name: o?.name ?? '',
    mountTargets: mounts.map((m) => m.target),
    mountSources: mounts.filter((m) => !isTmpfs(m)).map((m) => m.source),
  };
}
