// --container-save=IMAGE (pyxis's option; pyxis writes a squashfs file, berth pushes an image).
// At the job's end, on the job's first node, before its containers go: the job's container is
// committed (docker commit, paused meanwhile) with the config of the image it was made from —
// nothing of the container's own config (the job's environment, berth-init as its command) goes
// into the new image, and berth's labels, which dockerd adds to a commit's whatever it is given,
// are there empty, so that no container made from the image reads as berth's — tagged IMAGE, pushed with the job user's own registry
// login only (never the site's), and the local tag removed, so nothing of it stays on the node.
// A commit takes the container's root file system only: bind mounts (home, workdir,
// --container-mounts, /etc/passwd and /etc/group, the TaskProlog, the spool) and tmpfs are not
// in it, and what is in it was written by the job's user (the container runs as them) or came
// with the image. The target is judged again by the site rules (the job's environment is the
// user's to set). Every failure is the user's to fix and is said to them; none is the node's.
import type { RegistryAuth, CredentialLookup } from '../../shared/images/credentials';
import { registryKey } from '../../shared/images/credentials';
import { errorMessage } from '../../shared/errors';
import { OptionError } from '../../shared/container-options';
import { judgeSaveTarget } from '../../shared/site-rules-check';
import type { SiteRules } from '../../shared/site-rules';
import type { PullOptions } from '../docker/engine';
import type { Logger } from '../logger';
import type { JobUser } from './credential-store';

/** the engine's part in a save (docker/dockerode-engine.ts) */
export interface SaveEngine {
  inspect(id: string): Promise<{ labels: Record<string, string> } | undefined>;
  imageConfig(ref: string): Promise<Record<string, unknown> | undefined>;
  commitContainer(id: string, repository: string, tag: string, config: Record<string, unknown>): Promise<string>;
  pushImage(ref: string, auth: RegistryAuth, opts: PullOptions): Promise<void>;
  imageRepoDigests(ref: string): Promise<string[]>;
  removeImage(id: string): Promise<void>;
}

export interface ContainerSaverDeps {
  engine: SaveEngine;
  /** the user's own logins (images/credential-store.ts ownLogin) */
  ownLogin: (user: JobUser) => CredentialLookup;
  /** the user's home, for their login file */
  homeOf: (uid: number, user: string) => Promise<string>;
  siteRules: () => SiteRules;
  push: PullOptions;
  log: Logger;
}

export interface SaveRequest {
  jobId: string;
  uid: number;
  user: string;
  containerId: string;
  /** the image the container was made from (repository@digest) */
  imageDigest: string;
  /** --container-save's value, as the job's environment gives it */
  target: string;
}

/** what came of a save: the line the user is told */
export type SaveOutcome = { saved: true; image: string; message: string } | { saved: false; message: string };

/** Docker's image config keys a commit may set, taken from the source image */
const IMAGE_CONFIG_KEYS = ['User', 'Env', 'Cmd', 'Entrypoint', 'WorkingDir', 'ExposedPorts', 'Volumes', 'StopSignal', 'Shell', 'Healthcheck', 'OnBuild'] as const;

export class ContainerSaver {
  constructor(private readonly d: ContainerSaverDeps) {}

  /** Never throws: a failure is an outcome the user is told. */
  async save(req: SaveRequest): Promise<SaveOutcome> {
    const log = this.d.log.child({ job: req.jobId, save: req.target });
    const fail = (why: string): SaveOutcome => {
      log.warn('the job\'s container was not saved', { reason: why });
      return { saved: false, message: `berth: --container-save=${req.target}: the container was not saved: ${why}` };
    };
    let target: string;
    try {
      target = judgeSaveTarget(req.target, req.user, this.d.siteRules());
    } catch (err) {
      if (err instanceof OptionError) return fail(err.message.replace(/^--container-save=\S+: /, ''));
      throw err;
    }
    const colon = target.lastIndexOf(':');
    const repository = target.slice(0, colon);
    const tag = target.slice(colon + 1);
    const registry = registryKey(repository.slice(0, repository.indexOf('/')));
    let auth: RegistryAuth | undefined;
    try {
      auth = await this.d.ownLogin({ uid: req.uid, home: await this.d.homeOf(req.uid, req.user) })(registry);
    } catch (err) {
      return fail(errorMessage(err));
    }
    if (!auth) return fail(`you have no login for ${registry} in ~/.docker/config.json; run docker login ${registry} (a container is pushed with your own login only) and submit again`);
    let imageId: string;
    try {
      const source = (await this.d.engine.imageConfig(req.imageDigest)) ?? {};
      const config: Record<string, unknown> = Object.fromEntries(IMAGE_CONFIG_KEYS.filter((k) => source[k] !== undefined && source[k] !== null).map((k) => [k, source[k]]));
      // dockerd adds each label of the container the config does not name (berth's own, its seal among
      // them): named here empty, they carry nothing, and no reader of berth's takes an empty one
      const own = (await this.d.engine.inspect(req.containerId))?.labels ?? {};
      const imageLabels = (source.Labels as Record<string, string> | null) ?? {};
      config.Labels = { ...Object.fromEntries(Object.keys(own).filter((k) => !(k in imageLabels)).map((k) => [k, ''])), ...imageLabels, 'org.opencontainers.image.base.name': req.imageDigest };
      imageId = await this.d.engine.commitContainer(req.containerId, repository, tag, config);
    } catch (err) {
      return fail(`docker commit failed: ${errorMessage(err)}`);
    }
    try {
      await this.d.engine.pushImage(target, auth, this.d.push);
      const digest = (await this.d.engine.imageRepoDigests(target)).find((d) => d.startsWith(`${repository}@`));
      const image = digest ?? target;
      log.info('saved the job\'s container', { image });
      return { saved: true, image, message: `berth: --container-save: saved the container as ${image}` };
    } catch (err) {
      return fail(`the push to ${registry} as ${auth.username ?? 'your login'} was refused or failed: ${errorMessage(err)}`);
    } finally {
      // the committed image never stays on the node, pushed or not
      await this.d.engine.removeImage(imageId).catch((err: unknown) => log.warn('could not remove the committed image', { image: imageId, error: errorMessage(err) }));
    }
  }
}
