// `berth resolve IMAGE`: prints the image pinned to its manifest digest
// (REGISTRY/NAME@sha256:…). The SPANK plugin runs it when a job is submitted with
// --container-image, so that every node of the job runs exactly that digest and a missing
// image or an unreachable registry fails the submission in the user's terminal instead of
// the prolog draining a node.
import { parseImageReference, pinned } from '../shared/images/reference';
import { RegistryClient } from '../shared/images/registry-client';
import { classifyRegistryError } from '../shared/images/registry-errors';

export async function runResolve(image: string, out: (s: string) => void, err: (s: string) => void): Promise<number> {
  let ref;
  try {
    ref = parseImageReference(image);
  } catch (e) {
    err(`berth: ${(e as Error).message}\n`);
    return 1;
  }
  if (ref.digest) {
    out(`${pinned(ref, ref.digest)}\n`);
    return 0;
  }
  try {
    const digest = await new RegistryClient(20_000).resolveDigest(ref.text);
    out(`${pinned(ref, digest)}\n`);
    return 0;
  } catch (e) {
    err(`berth: ${classifyRegistryError(ref, e).message}\n`);
    return 1;
  }
}
