// Makes a job's image present on the node: resolve the reference to a digest with the
// registry (unless it is one already), then pull repository@digest unless the engine has it.
// Concurrent requests for one digest cause one pull. Registry calls and pulls carry the
// caller's credentials; a cached private image is gated per user (checkPrivate).
import { BerthError, errorMessage } from '../../shared/errors';
import type { Logger } from '../logger';
import type { ImageMetrics } from '../metrics/agent-metrics';
import type { ImageEngine, PullOptions } from '../docker/engine';
import type { ProgressSink, PullProgress } from '../docker/pull-stream';
import { type ImageReference, parseImageReference, pinned } from '../../shared/images/reference';
import type { DigestResolver } from '../../shared/images/registry-client';
import type { CredentialLookup, RegistryAuth } from '../../shared/images/credentials';
import { CredentialStore, type JobUser } from './credential-store';
import { type ImageAccess, MemoryImageAccess } from './image-access';
import { classifyRegistryError } from '../../shared/images/registry-errors';
import { isDiskFull, isEngineStorageFailure, isEngineUnreachable } from '../docker/engine-errors';
import { SingleFlight } from './single-flight';
import type { ImageBudget } from './image-budget';
import { registryHost } from '../../shared/images/registry-host';

export interface EnsuredImage {
  ref: ImageReference;
  /** repository@sha256:… at the origin registry: the job's identity of the image */
  digestRef: string;
  /** the local name to create containers from: digestRef, or the same digest through a mirror */
  localRef: string;
  digest: string;
  pulled: boolean;
  millis: number;
  /** bytes this call's pull downloaded (compressed layers the engine lacked); 0 without a pull */
  pullBytes: number;
}

/** who a registry call speaks as: callers with different credentials never share one */
function credentialKey(auth: RegistryAuth | undefined): string {
  return auth ? `${auth.source}\0${auth.username ?? ''}` : '';
}

export interface EnsureOptions {
  /** hears the pull this call starts; a call joining a pull in flight only hears its end */
  onProgress?: ProgressSink;
  /** the job user the image is for; absent for the site's own pulls (berth pull) */
  user?: JobUser;
}

export class ImageService {
  private readonly pulls = new SingleFlight<{ localRef: string; bytes: number }>();
  private readonly resolves = new SingleFlight<string>();

  constructor(
    private readonly engine: ImageEngine,
    private readonly resolver: DigestResolver,
    private readonly pullOptions: PullOptions,
    private readonly log: Logger,
    /** registry host → pull-through mirrors, tried in order before it */
    private readonly mirrors: Readonly<Record<string, readonly string[]>> = {},
    private readonly access: ImageAccess = new MemoryImageAccess(),
    private readonly credentialStore = new CredentialStore(),
    private readonly metrics?: ImageMetrics,
    /** imageGc.budgetBytes: room made before each pull, the pulled image checked against it */
    private readonly budget?: ImageBudget,
  ) {}

  async ensure(reference: string, opts: EnsureOptions = {}): Promise<EnsuredImage> {
    const began = Date.now();
    const ref = parseImageReference(reference);
    const creds = opts.user ? this.credentialStore.forUser(opts.user) : this.credentialStore.site();
    const auth = await creds.lookup(registryHost(ref.domain));
    let digest = ref.digest;
    /** the registry has just shown this caller the digest, under their credentials */
    let confirmed = false;
    if (!digest) {
      try {
        // concurrent prologues for one tag share one registry round trip (per credential)
        digest = (await this.resolves.do(`${ref.text}\0${credentialKey(auth)}`, () => this.resolver.resolveDigest(ref.text, auth))).value;
        confirmed = true;
      } catch (err) {
        throw classifyRegistryError(ref, err);
      }
    }
    const digestRef = pinned(ref, digest);
    const viaMirrors = (this.mirrors[ref.domain] ?? []).map((m) => `${m}/${ref.path}@${digest}`);
    let localRef: string | undefined;
    let pulled = false;
    let pullBytes = 0;
    for (const local of [digestRef, ...viaMirrors]) {
      if (await this.engine.imagePresent(local)) {
        localRef = local;
        break;
      }
    }
    if (localRef) this.metrics?.cacheHit();
    else {
      this.metrics?.cacheMiss();
      const log = this.log.child({ image: digestRef });
      // one pull per digest and credential: a pull another caller started anonymously (or
      // with their own login) must not decide for one who brings different credentials
      const flight = `${digestRef}\0${credentialKey(auth)}`;
      const result = await this.pulls.do(flight, async () => {
        const pullBegan = Date.now();
        let got;
        let release: (() => void) | undefined;
        try {
          if (this.budget) {
            const sources = await Promise.all(viaMirrors.map(async (m) => ({ ref: m, auth: await creds.lookup(m.slice(0, m.indexOf('/'))) })));
            release = await this.budget.reserve(digestRef, [...sources, { ref: digestRef, auth }]);
          }
          got = await this.pull(ref, digestRef, viaMirrors, creds.lookup, auth, opts, log, began);
          await this.budget?.check(digestRef, got.localRef);
        } catch (err) {
          this.metrics?.pullFailed(err instanceof BerthError ? err.code : 'PULL_FAILED');
          throw err;
        } finally {
          release?.();
        }
        this.metrics?.pullSucceeded((Date.now() - pullBegan) / 1000, got.bytes);
        // marked private (or public) before any caller sharing this pull goes on to checkPrivate;
        // a fresh pull replaces what an earlier copy of the image was known to allow
        if (auth && opts.user && creds.isUsers(auth)) this.access.reset(digestRef, opts.user.uid);
        else this.access.forget(digestRef);
        return got;
      });
      localRef = result.value.localRef;
      pulled = !result.shared;
      if (pulled) pullBytes = result.value.bytes;
      if (pulled) confirmed = true; // the registry served it to this caller
    }
    await this.checkPrivate(ref, digestRef, digest, auth, opts, confirmed);
    return { ref, digestRef, localRef, digest, pulled, millis: Date.now() - began, pullBytes };
  }

  private async pull(ref: ImageReference, digestRef: string, viaMirrors: string[], credentials: CredentialLookup, auth: RegistryAuth | undefined,
    opts: EnsureOptions, log: Logger, began: number): Promise<{ localRef: string; bytes: number }> {
    // the bytes a pull downloaded: the layer sizes its progress stream reported
    let bytes = 0;
    const onProgress = (p: PullProgress): void => {
      bytes = Math.max(bytes, p.totalBytes);
      opts.onProgress?.(p);
    };
    for (const mirrored of viaMirrors) {
      log.info('pulling image through a mirror', { mirror: mirrored });
      try {
        bytes = 0;
        await this.engine.pull(mirrored, this.pullOptions, onProgress, await credentials(mirrored.slice(0, mirrored.indexOf('/'))));
        log.info('pulled image', { from: mirrored, millis: Date.now() - began, bytes });
        return { localRef: mirrored, bytes };
      } catch (err) {
        log.warn('mirror failed; trying the next one, then the registry itself', { mirror: mirrored, error: errorMessage(err) });
      }
    }
    log.info('pulling image', auth ? { credentials: auth.source } : {});
    try {
      bytes = 0;
      await this.engine.pull(digestRef, this.pullOptions, onProgress, auth);
    } catch (err) {
      log.warn('pull failed', { error: errorMessage(err) });
      throw pullFailure(ref.text, err) ?? classifyRegistryError(ref, err);
    }
    log.info('pulled image', { millis: Date.now() - began, bytes });
    return { localRef: digestRef, bytes };
  }

  /**
   * A private image (pulled on this node with some user's own credentials) starts for another
   * user only once the registry confirms that user's credentials can read the same digest;
   * the answer is remembered. Site pulls (uid undefined) are not checked.
   */
  private async checkPrivate(ref: ImageReference, digestRef: string, digest: string, auth: RegistryAuth | undefined, opts: EnsureOptions, confirmed: boolean): Promise<void> {
    const allowed = this.access.allowed(digestRef);
    const uid = opts.user?.uid;
    if (!allowed || uid === undefined || allowed.has(uid)) return;
    if (!confirmed) {
      try {
        await this.resolver.checkAccess(ref.text, digest, auth);
      } catch (err) {
        const why = classifyRegistryError(ref, err).message.replace(`image '${ref.text}': `, '');
        throw new BerthError('IMAGE_ACCESS_DENIED', `image '${digestRef}' is on this node only because another user pulled it with their own registry credentials, and berth could not confirm that you may read it: ${why}`, { cause: err });
      }
    }
    this.access.grant(digestRef, uid);
  }

  imageId(ref: string): Promise<string | undefined> {
    return this.engine.imageId(ref);
  }

  get pullsInFlight(): number {
    return this.pulls.size;
  }
}

/** A pull that failed on this node, not at the registry: dockerd gone, its disk full or its storage failing. */
function pullFailure(image: string, err: unknown): BerthError | undefined {
  const msg = errorMessage(err).split('\n')[0]!;
  if (isEngineUnreachable(err)) return new BerthError('ENGINE_UNAVAILABLE', `dockerd on this node cannot be reached to pull image '${image}' (${msg}); the site admins must start it`, { cause: err });
  if (isDiskFull(err)) return new BerthError('DISK_FULL', `this node has no space left to pull image '${image}' (${msg}); the site admins must free space on dockerd's disk (berth prune --all)`, { cause: err });
  if (isEngineStorageFailure(err)) return new BerthError('ENGINE_FAILED', `dockerd on this node could not store image '${image}' (${msg}); the site admins must check dockerd's storage`, { cause: err });
  return undefined;
}
