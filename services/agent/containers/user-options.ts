// The user's --container-* options turned into what the job container gets, after the
// site's rules: mount sources the user can reach themselves (real paths, outside the site's
// denied prefixes and berth's own directories), home and read-only by the site's defaults
// unless the user said otherwise, and no target twice.
import { existsSync } from 'node:fs';
import { BerthError } from '../../shared/errors';
import type { ContainerOptions } from '../../shared/container-options';
import { OptionError } from '../../shared/container-options';
import { reachablePath } from '../../shared/path-access';
import type { SiteMount } from './job-container-spec';

export interface UserOptionRules {
  defaults: { mountHome: boolean; readOnly: boolean };
  userMounts: { enabled: boolean; deniedPrefixes: readonly string[] };
  /** berth's and dockerd's own paths: never mountable */
  protectedPaths: readonly string[];
  siteMounts: readonly SiteMount[];
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

function under(p: string, prefix: string): boolean {
  return p === prefix || p.startsWith(prefix.endsWith('/') ? prefix : prefix + '/');
}

export function applyUserOptions(jobId: string, o: ContainerOptions | undefined, who: { uid: number; gids: number[]; home: string }, workDir: string, rules: UserOptionRules): AppliedOptions {
  const refuse = (msg: string): never => {
    throw new BerthError('MOUNT_REFUSED', `job ${jobId}: ${msg}`);
  };
  const mounts: SiteMount[] = [];
  const taken = new Map<string, string>(rules.siteMounts.map((m) => [m.target, 'a site mount']));
  if (workDir) taken.set(workDir, "the job's working directory");
  for (const m of o?.mounts ?? []) {
    if (!rules.userMounts.enabled) refuse(`--container-mounts is turned off on this cluster (berthd userMounts.enabled); ask your site for the directories you need`);
    let real = '';
    try {
      real = reachablePath(m.source, { uid: who.uid, gids: who.gids }, '--container-mounts source');
    } catch (err) {
      if (err instanceof OptionError) refuse(err.message);
      throw err;
    }
    const denied = [...rules.userMounts.deniedPrefixes, ...rules.protectedPaths].find((p) => under(real, p) || under(p, real));
    if (denied) refuse(`--container-mounts source ${m.source}${real !== m.source ? ` (${real})` : ''} is ${under(real, denied) ? 'under' : 'above'} ${denied}, which this site does not let jobs mount`);
    const other = taken.get(m.target);
    if (other) refuse(`--container-mounts target ${m.target} is already ${other}; mount at another path`);
    taken.set(m.target, 'a mount of yours');
    mounts.push({ source: real, target: m.target, readOnly: m.readOnly });
  }
  const mountHome = o?.mountHome ?? rules.defaults.mountHome;
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
    readOnly: o?.readOnly ?? rules.defaults.readOnly,
    workdir: o?.workdir ?? '',
    envNames: o?.envNames ?? [],
    name: o?.name ?? '',
    mountTargets: mounts.map((m) => m.target),
    mountSources: mounts.map((m) => m.source),
  };
}
