// `berth resolve IMAGE`: prints the image pinned to its manifest digest
// (REGISTRY/NAME@sha256:…). The SPANK plugin runs it, as the submitting user, when a job is
// submitted with --container-image, so that every node of the job runs exactly that digest
// and a missing image, an unreachable registry or missing credentials fail the submission in
// the user's terminal instead of the prolog draining a node.
//
// A reference already pinned to a digest is checked too (HEAD of the manifest): a wrong or
// removed digest, a private image the user may not read, or a registry that cannot be reached
// fails the submission, as for a tag, rather than the job's prolog on a node without a copy.
//
// A registry that wants credentials is asked with the user's own ~/.docker/config.json (the
// one berthd will use for their jobs; refused if others can read it). Registries the site
// holds credentials for (BERTH_SITE_REGISTRIES, set by the plugin's site_registries=
// argument) cannot be asked by the user: their images are passed on unpinned, and each
// node's agent resolves them with the site's credentials at the prolog.
import os from 'node:os';
import path from 'node:path';
import { type CredentialLookup, fileCredentials, registryKey } from './credentials';
import { parseJobImageReference, pinned } from './reference';
import { type DigestResolver, RegistryClient, RegistryError } from './registry-client';
import { classifyRegistryError } from './registry-errors';

export interface ResolveOptions {
  /** registries the site's agents hold credentials for */
  siteRegistries?: readonly string[];
  /** the docker config file to read the user's logins from (default ~/.docker/config.json) */
  dockerConfig?: string;
  uid?: number;
  /** the user's logins, when not read from dockerConfig by this process (berthd's SubmitCheck) */
  logins?: CredentialLookup;
  client?: DigestResolver;
}

export function siteRegistriesFromEnv(env: NodeJS.ProcessEnv): string[] {
  return (env.BERTH_SITE_REGISTRIES ?? '').split(',').map((s) => s.trim()).filter(Boolean).map(registryKey);
}

export async function runResolve(image: string, out: (s: string) => void, err: (s: string) => void, opts: ResolveOptions = {}): Promise<number> {
  let ref;
  try {
    ref = parseJobImageReference(image);
  } catch (e) {
    err(`berth: ${(e as Error).message}\n`);
    return 1;
  }
  const registry = registryKey(ref.domain);
  const uid = opts.uid ?? process.getuid?.() ?? 0;
  const file = opts.dockerConfig ?? path.join(os.userInfo().homedir, '.docker', 'config.json');
  const client = opts.client ?? new RegistryClient(20_000);
  const site = (opts.siteRegistries ?? []).includes(registry);
  try {
    const auth = await (opts.logins ?? fileCredentials(file, uid))(registry);
    if (ref.digest) {
      // already pinned: still ask whether it exists and this user may read it, so that a
      // wrong digest or a private image fails here rather than at the prolog
      await client.checkAccess(ref.text, ref.digest, auth);
      out(`${pinned(ref, ref.digest)}\n`);
      return 0;
    }
    const digest = await client.resolveDigest(ref.text, auth);
    out(`${pinned(ref, digest)}\n`);
    return 0;
  } catch (e) {
    const anonymousRefused = e instanceof RegistryError && e.authRefused && e.anonymous;
    if (anonymousRefused && site) {
      // the site's credentials, which only the node agents hold, will be used at the prolog
      out(`${ref.digest ? pinned(ref, ref.digest) : ref.text}\n`);
      return 0;
    }
    const why = classifyRegistryError(ref, e);
    // a pinned digest is checked like a tag: a node that lacks the image needs the registry at
    // the prolog, so a registry that cannot say it has the digest now refuses the job now
    const pinnedNote = ref.digest && why.code === 'REGISTRY_UNAVAILABLE'
      ? '; the job was not submitted: berth checks at submission that the registry has the pinned digest, since nodes without a copy pull it from there; submit again once the registry answers'
      : '';
    err(`berth: ${why.message}${pinnedNote}\n`);
    return 1;
  }
}
