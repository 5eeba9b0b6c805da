// `berth site-rules [--file FILE]`: the site rules this host's `berth submit-check` applies,
// with the file's sha256, so an admin can compare a login node with what `berth status`
// shows for the compute nodes' berthd (column RULES). Exit 1 when the file is missing or bad.
import { DEFAULT_SITE_RULES_FILE, loadSiteRules, SiteRulesError } from '../shared/site-rules';

export function runSiteRules(file: string | undefined, json: boolean, out: (s: string) => void, err: (s: string) => void): number {
  let r;
  try {
    r = loadSiteRules(file ?? DEFAULT_SITE_RULES_FILE);
  } catch (e) {
    if (!(e instanceof SiteRulesError)) throw e;
    err(`berth site-rules: ${e.message}\n`);
    return 1;
  }
  if (json) {
    out(JSON.stringify(r, null, 2) + '\n');
    return 0;
  }
  const list = (xs: readonly string[]): string => (xs.length ? xs.join(', ') : '-');
  out([
    `file          ${r.file}`,
    `sha256        ${r.sha256}   (berth status shows its first 12 digits as RULES: ${r.sha256.slice(0, 12)})`,
    `site mounts   ${list(r.mounts.map((m) => `${m.source}${m.target !== m.source ? ` at ${m.target}` : ''}${m.readOnly ? ' (ro)' : ''}`))}`,
    `user mounts   ${r.userMounts.enabled ? 'allowed' : 'off'}; denied under: ${list(r.userMounts.deniedPrefixes)}; protected: ${list(r.protectedPaths)}`,
    `defaults      home ${r.containerDefaults.mountHome ? 'mounted' : 'not mounted'}, root file system ${r.containerDefaults.readOnly ? 'read-only' : 'writable'}`,
    `registries    ${r.registries.length ? r.registries.join(', ') : 'any'}`,
    `save to       ${r.containerSave.repositories.length ? r.containerSave.repositories.join(', ') : '- (--container-save is refused)'}`,
  ].join('\n') + '\n');
  return 0;
}
