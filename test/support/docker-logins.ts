// The sandbox users' own registry logins (~/.docker/config.json) for tests that set them: the
// files the users had are put aside while the test runs and put back after it.
import { existsSync, renameSync, rmSync } from 'node:fs';
import path from 'node:path';
import { run } from './slurm';

const SAVED = '.berth-test-saved';

export const homeOf = (user: string): string => run('getent', ['passwd', user]).stdout.split(':')[5]!;

/** the user's Docker client config, where `docker login` writes their logins */
export const loginFile = (user: string): string => path.join(homeOf(user), '.docker', 'config.json');

/**
 * Puts each user's login file aside (none is left for them); returns what puts them back: it
 * removes the files the test wrote, then restores the ones the users had.
 */
export function stashLogins(users: readonly string[]): () => void {
  const saved: string[] = [];
  for (const u of users) {
    const f = loginFile(u);
    if (existsSync(`${f}${SAVED}`)) throw new Error(`${f}${SAVED} exists: an earlier test run did not restore it; move it back to ${f} (or remove it) first`);
    if (existsSync(f)) {
      renameSync(f, `${f}${SAVED}`);
      saved.push(f);
    }
  }
  return () => {
    for (const u of users) rmSync(loginFile(u), { force: true });
    for (const f of saved) renameSync(`${f}${SAVED}`, f);
  };
}
