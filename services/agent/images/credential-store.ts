// Which registry credentials a pull may use. Site pulls (berth pull, the site's own images)
// use the site's file (config registryCredentialsFile: docker config.json format, root's,
// mode 0600). A job's pulls use the job user's own ~/.docker/config.json first — only for
// that user's jobs — then the site's. Files are read when a registry needs them and re-read
// when they change, so a fresh `docker login` counts for the next job.
import path from 'node:path';
import { anonymous, type CredentialLookup, fileCredentials, firstOf, type RegistryAuth } from '../../shared/images/credentials';

export interface JobUser {
  uid: number;
  home: string;
}

export interface Credentials {
  lookup: CredentialLookup;
  /** whether AUTH came from the user's own file (a pull with it makes the image private) */
  isUsers(auth: RegistryAuth): boolean;
}

const MAX_USERS = 1024;

export class CredentialStore {
  private readonly siteLookup: CredentialLookup;
  private readonly users = new Map<string, CredentialLookup>();

  constructor(readonly siteFile?: string) {
    this.siteLookup = siteFile ? fileCredentials(siteFile, 0, { site: true }) : anonymous;
  }

  site(): Credentials {
    return { lookup: this.siteLookup, isUsers: () => false };
  }

  forUser(user: JobUser): Credentials {
    const file = userFile(user);
    return { lookup: firstOf(this.ownLogin(user), this.siteLookup), isUsers: (auth) => auth.source === file };
  }

  /** the user's own logins only, never the site's: what a push in the user's name may use (--container-save) */
  ownLogin(user: JobUser): CredentialLookup {
    const file = userFile(user);
    const key = `${user.uid}\0${file}`;
    let own = this.users.get(key);
    if (!own) {
      if (this.users.size >= MAX_USERS) this.users.clear();
      own = fileCredentials(file, user.uid);
      this.users.set(key, own);
    }
    return own;
  }
}

function userFile(user: JobUser): string {
  return path.join(user.home, '.docker', 'config.json');
}
