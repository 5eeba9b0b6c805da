// The site rules applied to what a user asked for: the same functions run in `berth
// submit-check` (as the user, at sbatch/salloc/srun) and in berthd's prologue, so a value is
// refused at submit with the message berthd would give. Each refusal names the value as the
// user wrote it, what is wrong with it, and the rule (file and key) that refuses it.
import { realpathSync } from 'node:fs';
import { isTmpfs, OptionError, type UserMount } from './container-options';
import { registryKey } from './images/credentials';
import { parseJobImageReference } from './images/reference';
import { CannotLookAs, reachablePath, realpathAs, type Who } from './path-access';
import { ruleSource, type SiteRules } from './site-rules';

/** How a path is resolved and checked; the real file system unless a test gives its own. */
export interface PathProbe {
  /** the real path (symbolic links resolved), or undefined when it cannot be resolved */
  realpath(p: string): string | undefined;
  /** the real path if `who` may read it, else an OptionError naming `what` */
  reachable(p: string, who: Who, what: string): string;
}

export const REAL_PATHS: PathProbe = {
  realpath: (p) => {
    try {
      return realpathSync.native(p);
    } catch {
      return undefined;
    }
  },
  reachable: reachablePath,
};

/**
 * The paths as `who` reaches them, for a process that is not `who` (berthd, root, answering
 * SubmitCheck for a user): every lookup as that user's own would go (path-access.ts realpathAs).
 */
export function pathsAs(who: Who): PathProbe {
  const resolve = (p: string): string => realpathAs(p, who);
  return {
    realpath: (p) => {
      try {
        return resolve(p);
      } catch (err) {
        if (err instanceof CannotLookAs) throw err;
        return undefined;
      }
    },
    // realpathAs stat'ed every directory on the way as this process: reachablePath's own stats see them too
    reachable: (p, w, what) => reachablePath(p, w, what, resolve),
  };
}

/** A mount as the user writes it: SRC, SRC:DST, SRC:DST:ro+rslave, tmpfs:DST. */
export function mountText(m: UserMount): string {
  const flags = [...(m.readOnly ? ['ro'] : []), ...(m.propagation ? [m.propagation] : []), ...(m.tmpfsOptions ?? [])];
  return `${m.source}${m.target !== m.source || flags.length ? `:${m.target}` : ''}${flags.length ? `:${flags.join('+')}` : ''}`;
}

function under(p: string, prefix: string): boolean {
  return p === prefix || p.startsWith(prefix.endsWith('/') ? prefix : prefix + '/');
}

export interface ProtectedPath {
  path: string;
  /** where the rule is written, for the message */
  source: string;
}

const NO_OWN: readonly ProtectedPath[] = Object.freeze([]);

/**
 * The lists already built, by rules and own list: both are frozen and loaded once (the site
 * rules at start and on SIGHUP, berthd's own paths with its config), so each pair is built
 * once and every later mount check reads the same list. Weak: rules replaced by a reload go.
 */
const built = new WeakMap<SiteRules, WeakMap<readonly ProtectedPath[], readonly ProtectedPath[]>>();

/** Every path a mount source must stay away from: the site's denied prefixes and protected paths, and `own` (berthd's); frozen. */
export function protectedPaths(rules: SiteRules, own: readonly ProtectedPath[] = NO_OWN): readonly ProtectedPath[] {
  let byOwn = built.get(rules);
  if (!byOwn) built.set(rules, byOwn = new WeakMap());
  let list = byOwn.get(own);
  if (!list) {
    list = Object.freeze([
      ...rules.userMounts.deniedPrefixes.map((p) => ({ path: p, source: ruleSource(rules, 'userMounts.deniedPrefixes') })),
      ...rules.protectedPaths.map((p) => ({ path: p, source: ruleSource(rules, 'protectedPaths') })),
      ...own,
    ]);
    byOwn.set(own, list);
  }
  return list;
}

/**
 * Checks the user's mounts against the rules and returns them with real sources (what is
 * mounted): user mounts allowed at all, targets clear of the site mounts, sources (real
 * paths) neither under nor above a denied or protected path, and readable by `who`.
 */
export function judgeMounts(mounts: readonly UserMount[], rules: SiteRules, who: Who, own: readonly ProtectedPath[] = [], probe: PathProbe = REAL_PATHS): UserMount[] {
  if (mounts.length === 0) return [];
  const guarded = protectedPaths(rules, own).map((g) => ({ ...g, real: probe.realpath(g.path) ?? g.path }));
  return mounts.map((m) => {
    const text = `--container-mounts=${mountText(m)}`;
    const site = rules.mounts.findIndex((s) => s.target === m.target);
    // a tmpfs holds no host path: only its target is judged
    if (isTmpfs(m) && site < 0) return { ...m };
    if (!rules.userMounts.enabled) {
      throw new OptionError(`${text}: this site does not let jobs mount host paths (${ruleSource(rules, 'userMounts.enabled')} is false); ask your site for the directories you need`);
    }
    if (site >= 0) {
      throw new OptionError(`${text}: the target ${m.target} is where every job gets the site mount ${rules.mounts[site]!.source} (${ruleSource(rules, `mounts.${site}`)}); mount at another path`);
    }
    // the rules first, on the real path (a symbolic link is judged where it leads), then the user's own access
    const real = probe.realpath(m.source);
    if (real !== undefined) {
      const shown = real === m.source ? m.source : `${m.source} (really ${real})`;
      for (const g of guarded) {
        const inside = under(real, g.path) || under(real, g.real);
        const holds = !inside && (under(g.path, real) || under(g.real, real));
        if (inside || holds) {
          throw new OptionError(`${text}: the source ${shown} ${inside ? 'is under' : 'holds'} ${g.path}, which this site does not let jobs mount (${g.source})`);
        }
      }
    }
    const reached = probe.reachable(m.source, who, `${text}: the source path`);
    return { ...m, source: reached };
  });
}

/** The registry a job image comes from must be one of the site's, when the site lists any. */
export function judgeImageRegistry(image: string, rules: SiteRules): void {
  if (rules.registries.length === 0) return;
  let domain: string;
  try {
    domain = parseJobImageReference(image).domain;
  } catch {
    return; // malformed: the reference's own check says why
  }
  const from = registryKey(domain);
  if (rules.registries.map(registryKey).includes(from)) return;
  throw new OptionError(`--container-image=${image}: the registry ${from} is not one this site lets jobs use (${ruleSource(rules, 'registries')}: ${rules.registries.join(', ')}); use an image from one of those`);
}

/** the user's name as a repository path component may hold it */
function asPathComponent(user: string): string {
  return user.toLowerCase().replace(/[^a-z0-9._-]/g, '-');
}

/**
 * --container-save=IMAGE: where the job's container is pushed (with the user's own login). IMAGE
 * must name a registry and a tag (none: latest), no digest, and match one of the site's
 * containerSave.repositories patterns for this user. Returns REGISTRY/PATH:TAG.
 */
export function judgeSaveTarget(image: string, user: string, rules: SiteRules): string {
  const what = `--container-save=${image}`;
  let ref;
  try {
    ref = parseJobImageReference(image);
  } catch (err) {
    throw new OptionError(`${what}: ${(err as Error).message}`);
  }
  if (ref.digest) throw new OptionError(`${what}: a saved container gets a new digest; name a tag instead, e.g. ${ref.repository}:v1`);
  if (!ref.domain) throw new OptionError(`${what}: name the registry to push to, e.g. registry.site:5000/${asPathComponent(user)}/${ref.path}:${ref.tag ?? 'latest'}`);
  const patterns = rules.containerSave.repositories;
  if (patterns.length === 0) throw new OptionError(`${what}: this site does not let jobs save their containers (${ruleSource(rules, 'containerSave.repositories')} is empty); build the image with docker build outside jobs instead, or install into your home (docs/users.md, "Installing software")`);
  const repository = `${registryKey(ref.domain)}/${ref.path}`;
  const allowed = patterns.map((p) => p.replaceAll('{user}', asPathComponent(user)));
  const matches = allowed.some((p) => new RegExp(`^${p.split('*').map((part) => part.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('[^/]*')}$`).test(repository));
  if (!matches) throw new OptionError(`${what}: ${repository} is not a repository this site lets you push to (${ruleSource(rules, 'containerSave.repositories')}: ${allowed.join(', ')}); save to one of those`);
  return `${repository}:${ref.tag ?? 'latest'}`;
}
