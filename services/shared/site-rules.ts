// The site's rules for what job users control: the mounts every job gets, which host paths
// users may mount, the defaults of home and read-only, and the registries images come from.
// One file, /etc/berth/site.json, read by berthd on every compute node (berthd.json's
// `siteRules` names it) and by `berth submit-check` as the submitting user on login and
// compute nodes, so a value berthd would refuse fails sbatch, salloc or srun instead of a
// node's prolog. It is world-readable and holds nothing secret; the site keeps it the same
// everywhere with its configuration management (berthd logs its sha256 at start and
// `berth status` shows it). Validated once per read; a bad file names every bad key.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { z } from 'zod';

export const DEFAULT_SITE_RULES_FILE = '/etc/berth/site.json';

const absolutePath = z.string().refine((p) => p.startsWith('/'), { message: 'must be an absolute path' });
const REGISTRY = /^(?:localhost|[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*|\[[0-9A-Fa-f:]+\])(?::\d{1,5})?$/;

/** What berth itself protects when the file says nothing: its own directories and dockerd's. */
export const DEFAULT_PROTECTED_PATHS: readonly string[] = ['/run/berth', '/var/lib/berth', '/usr/local/lib/berth', '/var/run/docker.sock', '/var/lib/docker'];
export const DEFAULT_DENIED_PREFIXES: readonly string[] = ['/proc', '/sys', '/dev', '/run', '/boot', '/etc'];

export const siteRulesSchema = z.object({
  /** site file systems every job container gets */
  mounts: z.array(z.object({
    source: absolutePath,
    target: absolutePath,
    readOnly: z.boolean().default(false),
  }).strict()).default([]),
  /** what a job gets when the user gives no --[no-]container-mount-home / --container-readonly */
  containerDefaults: z.object({
    mountHome: z.boolean().default(true),
    readOnly: z.boolean().default(false),
  }).strict().default({}),
  /** users' --container-mounts: off with enabled=false; sources under (or above) these paths are refused */
  userMounts: z.object({
    enabled: z.boolean().default(true),
    deniedPrefixes: z.array(absolutePath).default([...DEFAULT_DENIED_PREFIXES]),
  }).strict().default({}),
  /** berth's and dockerd's own paths: refused as mount sources, as are the paths above them */
  protectedPaths: z.array(absolutePath).default([...DEFAULT_PROTECTED_PATHS]),
  /** registries job images may come from (and users' docker pulls: {{registries}} in policies); [] = any for job images */
  registries: z.array(z.string().regex(REGISTRY, 'must be a registry host[:port], e.g. registry.site:5000')).default([]),
  /**
   * --container-save=IMAGE: the repositories a job's container may be pushed to, with the user's
   * own login, as REGISTRY/PATH patterns: {user} is the job's user name, * any characters but '/';
   * [] = --container-save is refused
   */
  containerSave: z.object({
    repositories: z.array(z.string().regex(/^[^\s@:/]+(?::\d{1,5})?\/[^\s@:]+$/, 'must be REGISTRY/PATH, e.g. registry.site:5000/{user}/*')).default([]),
  }).strict().default({}),
}).strict().superRefine((r, ctx) => {
  const seen = new Map<string, number>();
  r.mounts.forEach((m, i) => {
    const first = seen.get(m.target);
    if (first !== undefined) ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['mounts', i, 'target'], message: `${m.target} is already the target of mounts.${first}` });
    seen.set(m.target, i);
  });
});

export interface SiteMountRule {
  readonly source: string;
  readonly target: string;
  readonly readOnly: boolean;
}

export interface SiteRules {
  /** where they were read from; '' = berth's built-in defaults (no file) */
  readonly file: string;
  /** sha256 of the file's bytes, hex; '' without a file */
  readonly sha256: string;
  readonly mounts: readonly SiteMountRule[];
  readonly containerDefaults: { readonly mountHome: boolean; readonly readOnly: boolean };
  readonly userMounts: { readonly enabled: boolean; readonly deniedPrefixes: readonly string[] };
  readonly protectedPaths: readonly string[];
  readonly registries: readonly string[];
  readonly containerSave: { readonly repositories: readonly string[] };
}

/** outside the catalogue: an operator's file that cannot be used, met at start (berthd exits 2), on SIGHUP (logged, the old rules stay) or by the CLI; never an RPC's answer */
export class SiteRulesError extends Error {
  override readonly name = 'SiteRulesError';
}

function freeze(raw: z.infer<typeof siteRulesSchema>, file: string, sha256: string): SiteRules {
  return Object.freeze({
    file,
    sha256,
    mounts: Object.freeze(raw.mounts.map((m) => Object.freeze({ ...m }))),
    containerDefaults: Object.freeze({ ...raw.containerDefaults }),
    userMounts: Object.freeze({ enabled: raw.userMounts.enabled, deniedPrefixes: Object.freeze([...raw.userMounts.deniedPrefixes]) }),
    protectedPaths: Object.freeze([...raw.protectedPaths]),
    registries: Object.freeze([...raw.registries]),
    containerSave: Object.freeze({ repositories: Object.freeze([...raw.containerSave.repositories]) }),
  });
}

/** The rules from a file's text; every bad key is one line `FILE: key: message`. */
export function parseSiteRules(text: string, file: string): SiteRules {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new SiteRulesError(`site rules ${file} are not valid JSON: ${(err as Error).message}`);
  }
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw new SiteRulesError(`site rules ${file} must hold one JSON object`);
  const parsed = siteRulesSchema.safeParse(raw);
  if (!parsed.success) {
    throw new SiteRulesError(parsed.error.issues.map((i) => `${file}: ${i.path.length ? i.path.join('.') : '(top level)'}: ${i.message}`).join('\n'));
  }
  return freeze(parsed.data, file, createHash('sha256').update(text).digest('hex'));
}

/** Reads and checks FILE. A missing or unreadable file is an error: both sides must read the same rules. */
export function loadSiteRules(file: string = DEFAULT_SITE_RULES_FILE): SiteRules {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
    throw new SiteRulesError(code === 'ENOENT'
      ? `the site rules file ${file} does not exist; install it on every compute and login node (docs/install.md, section 4)`
      : `cannot read the site rules file ${file}: ${code}; it must be readable by every user (mode 0644)`);
  }
  return parseSiteRules(text, file);
}

/** The sha256 of FILE as it is now on disk; '' when it cannot be read. */
export function siteRulesFileHash(file: string): string {
  try {
    return createHash('sha256').update(readFileSync(file)).digest('hex');
  } catch {
    return '';
  }
}

/** berth's built-in rules, as an empty file gives them (tests, and code that is given no file). */
export function builtinSiteRules(over: Partial<z.input<typeof siteRulesSchema>> = {}): SiteRules {
  return freeze(siteRulesSchema.parse(over), '', '');
}

/** "site rules FILE, KEY": where a refusal's rule is written */
export function ruleSource(rules: SiteRules, key: string): string {
  return `${rules.file ? `site rules ${rules.file}` : "berth's built-in site rules"}, ${key}`;
}
