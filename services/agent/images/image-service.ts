// Makes a job's image present on the node: resolve the reference to a digest with the
// registry (unless it is one already), then pull repository@digest unless the engine has it. Concurrent requests
// for one digest cause one pull.
import { BerthError, errorMessage } from '../../shared/errors';
import type { Logger } from '../logger';
import type { ImageEngine, PullOptions } from '../docker/engine';
import type { ProgressSink } from '../docker/pull-stream';
import { type ImageReference, parseImageReference, pinned } from '../../shared/images/reference';
import type { DigestResolver } from '../../shared/images/registry-client';
import { classifyRegistryError } from '../../shared/images/registry-errors';
import { SingleFlight } from './single-flight';

export interface EnsuredImage {
  ref: ImageReference;
  /** repository@sha256:… at the origin registry: the job's identity of the image */
  digestRef: string;
  /** the local name to create containers from: digestRef, or the same digest through a mirror */
  localRef: string;
  digest: string;
  pulled: boolean;
  millis: number;
}

export class ImageService {
  private readonly pulls = new SingleFlight<string>();
  private readonly resolves = new SingleFlight<string>();

  constructor(
    private readonly engine: ImageEngine,
    private readonly resolver: DigestResolver,
    private readonly pullOptions: PullOptions,
    private readonly log: Logger,
    /** registry host → pull-through mirrors, tried in order before it */
    private readonly mirrors: Readonly<Record<string, readonly string[]>> = {},
  ) {}

  /** onProgress hears the pull this call starts; a call joining a pull in flight only hears its end. */
  async ensure(reference: string, onProgress?: ProgressSink): Promise<EnsuredImage> {
    const began = Date.now();
    const ref = parseImageReference(reference);
    let digest = ref.digest;
    if (!digest) {
      try {
        // concurrent prologues for one tag share one registry round trip
        digest = (await this.resolves.do(ref.text, () => this.resolver.resolveDigest(ref.text))).value;
      } catch (err) {
        throw classifyRegistryError(ref, err);
      }
    }
    const digestRef = pinned(ref, digest);
    const viaMirrors = (this.mirrors[ref.domain] ?? []).map((m) => `${m}/${ref.path}@${digest}`);
    for (const local of [digestRef, ...viaMirrors]) {
      if (await this.engine.imagePresent(local)) return { ref, digestRef, localRef: local, digest, pulled: false, millis: Date.now() - began };
    }
    const log = this.log.child({ image: digestRef });
    const { value: localRef, shared } = await this.pulls.do(digestRef, async () => {
      for (const mirrored of viaMirrors) {
        log.info('pulling image through a mirror', { mirror: mirrored });
        try {
          await this.engine.pull(mirrored, this.pullOptions, onProgress);
          log.info('pulled image', { from: mirrored, millis: Date.now() - began });
          return mirrored;
        } catch (err) {
          log.warn('mirror failed; trying the next one, then the registry itself', { mirror: mirrored, error: errorMessage(err) });
        }
      }
      log.info('pulling image');
      try {
        await this.engine.pull(digestRef, this.pullOptions, onProgress);
      } catch (err) {
        log.warn('pull failed', { error: errorMessage(err) });
        throw classifyRegistryError(ref, err);
      }
      log.info('pulled image', { millis: Date.now() - began });
      return digestRef;
    });
    return { ref, digestRef, localRef, digest, pulled: !shared, millis: Date.now() - began };
  }

  imageId(ref: string): Promise<string | undefined> {
    return this.engine.imageId(ref);
  }

  get pullsInFlight(): number {
    return this.pulls.size;
  }
}
