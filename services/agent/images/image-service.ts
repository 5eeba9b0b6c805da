// Makes a job's image present on the node: resolve the reference to a digest with the
// registry (unless it is one already), then pull repository@digest unless the engine has it. Concurrent requests
// for one digest cause one pull.
import { BerthError, errorMessage } from '../../shared/errors';
import type { Logger } from '../logger';
import type { ImageEngine, PullOptions } from '../docker/engine';
import { engineMessage } from '../docker/engine';
import { type ImageReference, parseImageReference, pinned } from './reference';
import type { DigestResolver } from './registry-client';
import { SingleFlight } from './single-flight';

export interface EnsuredImage {
  ref: ImageReference;
  /** repository@sha256:… — what the container is created from */
  digestRef: string;
  digest: string;
  pulled: boolean;
  millis: number;
}

const NOT_FOUND = /manifest unknown|not found|name unknown|does not exist|no such image|repository .* not found/i;
const UNREACHABLE = /connection refused|ECONNREFUSED|no such host|i\/o timeout|dial tcp|network is unreachable|timeout|EOF|server gave HTTP response|TLS handshake/i;

export function classifyRegistryError(ref: ImageReference, err: unknown): BerthError {
  const detail = engineMessage(err);
  const registry = ref.domain || 'docker.io';
  if (NOT_FOUND.test(detail)) {
    return new BerthError('IMAGE_NOT_FOUND', `image '${ref.text}' was not found in registry ${registry} (${detail}); check the name and tag, or push the image there first`, { cause: err });
  }
  if (UNREACHABLE.test(detail)) {
    return new BerthError('REGISTRY_UNAVAILABLE', `registry ${registry} could not be reached for image '${ref.text}' (${detail}); ask the site admins to check the registry`, { cause: err });
  }
  return new BerthError('PULL_FAILED', `could not get image '${ref.text}' from registry ${registry}: ${detail}`, { cause: err });
}

export class ImageService {
  private readonly pulls = new SingleFlight<void>();
  private readonly resolves = new SingleFlight<string>();

  constructor(
    private readonly engine: ImageEngine,
    private readonly resolver: DigestResolver,
    private readonly pullOptions: PullOptions,
    private readonly log: Logger,
  ) {}

  async ensure(reference: string): Promise<EnsuredImage> {
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
    if (await this.engine.imagePresent(digestRef)) {
      return { ref, digestRef, digest, pulled: false, millis: Date.now() - began };
    }
    const log = this.log.child({ image: digestRef });
    const { shared } = await this.pulls.do(digestRef, async () => {
      log.info('pulling image');
      try {
        await this.engine.pull(digestRef, this.pullOptions);
      } catch (err) {
        log.warn('pull failed', { error: errorMessage(err) });
        throw classifyRegistryError(ref, err);
      }
      log.info('pulled image', { millis: Date.now() - began });
    });
    return { ref, digestRef, digest, pulled: !shared, millis: Date.now() - began };
  }

  get pullsInFlight(): number {
    return this.pulls.size;
  }
}
