// SubmitCheck: `berth submit-check` answered by berthd, so that an srun in a running job needs
// no Node.js start (berth-hook submit-check asks this over the user socket). The check is the
// CLI's own (shared/submit-check.ts runSubmitCheck); what the CLI takes from its process
// (running as the user) berthd takes from the authenticated caller instead:
//   uid, groups     the munge credential's uid and gid, the user's groups from NSS
//   home, name      the passwd entry (NSS)
//   paths           looked up as the user's own lookup would go (pathsAs): berthd is root, and
//                   must neither answer differently nor show where a link the user could not
//                   follow leads
//   registry login  the user's ~/.docker/config.json, its directories resolved as the user
//                   could (a link to another's directory is not followed), the file itself
//                   opened as credentials.ts opens it (the user's own, no symlink, private)
//   site rules      the rules berthd holds in force (the file the CLI reads)
// Where root itself may not look (a root-squashed NFS home) berthd cannot tell what the user
// sees: it answers NOT_SERVED_ON_NODE, and berth-hook runs the user's own `berth submit-check`.
// A root caller (admin socket, or munge uid 0) is answered as root's `berth submit-check` is.
import { closeSync, constants, openSync } from 'node:fs';
import path from 'node:path';
import { asProcess, CannotLookAs, realpathAs, type Who } from '../../shared/path-access';
import { type CredentialLookup, fileCredentials } from '../../shared/images/credentials';
import { BerthError } from '../../shared/errors';
import { siteRegistriesFromEnv } from '../../shared/images/resolve';
import type { DigestResolver } from '../../shared/images/registry-client';
import type { SiteRules } from '../../shared/site-rules';
import { pathsAs } from '../../shared/site-rules-check';
import { runSubmitCheck } from '../../shared/submit-check';
import type { Caller } from '../auth/caller';
import type { IdentityResolver } from '../identity/nss';

export interface SubmitCheckAnswer {
  exitCode: number;
  stdout: string;
  stderr: string;
}

export interface SubmitCheckerDeps {
  identities: Pick<IdentityResolver, 'lookup'>;
  siteRules: () => SiteRules;
  /** the registry client (tests); default: resolve.ts's own */
  registry?: DigestResolver;
}

/** The names a submit check reads; any other variable in a request is not passed on. */
const CHECKED_NAME = /^(BERTH_[A-Z0-9_]+|PYXIS_[A-Z0-9_]+|SLURM_JOB_ID)$/;
const MAX_VARIABLES = 256;
const MAX_VALUE_BYTES = 64 * 1024;

export function checkedEnv(entries: readonly { name: string; value: string }[]): Record<string, string> {
  if (entries.length > MAX_VARIABLES) throw new BerthError('INVALID_REQUEST', `SubmitCheck: ${entries.length} variables, more than the ${MAX_VARIABLES} a submit check reads`);
  const env: Record<string, string> = {};
  for (const { name, value } of entries) {
    if (Buffer.byteLength(value) > MAX_VALUE_BYTES) throw new BerthError('INVALID_REQUEST', `SubmitCheck: ${name} is longer than ${MAX_VALUE_BYTES} bytes`);
    if (CHECKED_NAME.test(name)) env[name] = value;
  }
  return env;
}

/**
 * The user's registry logins from FILE (their ~/.docker/config.json): its directory resolved
 * as the user resolves it, so root does not follow a link the user could not; a file the
 * user could not reach is what the CLI would see (none, or not readable).
 */
function loginsAs(file: string, who: Who): CredentialLookup {
  let dir: string | undefined;
  let unreachable: Error | undefined;
  try {
    dir = realpathAs(path.dirname(file), who);
  } catch (err) {
    if (err instanceof CannotLookAs) throw err;
    const code = (err as NodeJS.ErrnoException).code;
    // as the user: ENOENT/ENOTDIR is no file (anonymous), EACCES the open's refusal (credentials.ts readPrivateFile)
    if (code === 'EACCES') unreachable = new BerthError('CREDENTIALS_UNSAFE', `registry credentials ${file} cannot be read by root (a root-squashed home directory?); berth will not use them: ask the site admins to use site credentials for this registry`);
    else if (code !== 'ENOENT' && code !== 'ENOTDIR') unreachable = err as Error;
  }
  if (unreachable) {
    const why = unreachable;
    return async () => {
      throw why;
    };
  }
  if (dir === undefined) return async () => undefined;
  const real = path.join(dir, path.basename(file));
  // a file root may not open (a root-squashed home) is one the user's own check would read
  asProcess(real, () => {
    try {
      closeSync(openSync(real, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EACCES') return; // credentials.ts says what else is wrong
      throw err;
    }
  });
  return fileCredentials(real, who.uid);
}

export class SubmitChecker {
  constructor(private readonly d: SubmitCheckerDeps) {}

  async check(caller: Caller, entries: readonly { name: string; value: string }[]): Promise<SubmitCheckAnswer> {
    if (caller.kind === 'remote') throw new BerthError('PERMISSION_DENIED', 'SubmitCheck is served on the node\'s sockets only');
    const env = checkedEnv(entries);
    const uid = caller.kind === 'root' ? 0 : caller.uid;
    const user = await this.d.identities.lookup(uid);
    const primary = caller.kind === 'root' ? user.gid : caller.gid;
    const gids = [primary, ...user.groups.map((g) => g.gid).filter((g) => g !== primary)];
    const who = { uid, gids };
    let stdout = '';
    let stderr = '';
    try {
      const dockerConfig = path.join(user.home, '.docker', 'config.json');
      const logins = loginsAs(dockerConfig, who);
      const exitCode = await runSubmitCheck(env, (s) => (stdout += s), (s) => (stderr += s), {
        who, home: user.home, userName: user.name, siteRules: this.d.siteRules(), probe: pathsAs(who), logins,
        resolve: { siteRegistries: siteRegistriesFromEnv(env), uid, dockerConfig, logins, ...(this.d.registry ? { client: this.d.registry } : {}) },
      });
      return { exitCode, stdout, stderr };
    } catch (err) {
      // berthd cannot see what the user sees there: their own `berth submit-check` answers (berth-hook runs it on an error)
      if (err instanceof CannotLookAs) throw new BerthError('NOT_SERVED_ON_NODE', `SubmitCheck: ${err.message}; berth submit-check checks this as you`);
      throw err;
    }
  }
}
