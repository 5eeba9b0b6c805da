// Whose fault a failed prologue or step prologue is, by berth's error code: one table, read by
// berthd (which records a job fault for the job's steps, docs/operations.md "Job faults and
// node faults") and by the hooks. A job fault is the job's own: its options, its image, its
// credentials, the site policy on it, its names, its paths. The job fails with the reason and
// the node stays in service. A node fault is the node's: its engine, its disk, its agent, its
// configuration. The node is drained with the reason, as Slurm does for any failed prolog.
// An error without a code (berthd not reached, a bug) is the node's.
import type { ErrorCode } from './errors';

export type FaultClass = 'job' | 'node';

/** the gRPC metadata key berthd sends the class in, beside x-berth-error-code */
export const FAULT_METADATA_KEY = 'x-berth-fault';

export interface FaultEntry {
  fault: FaultClass;
  /** when a prologue meets it, in a few words (docs/operations.md repeats them) */
  when: string;
  /** a node fault's cause in a word or two: the drain reason begins with it (sinfo -R shows 20 characters) */
  cause?: string;
}

/** Every code of the catalogue, classed: the compiler refuses a code without an entry. */
export const FAULTS: Readonly<Record<ErrorCode, FaultEntry>> = {
  OPTIONS_INVALID: { fault: 'job', when: "a --container-* value berthd refuses, or a job working directory (--chdir) that is not a normalized absolute path" },
  INVALID_IMAGE_REFERENCE: { fault: 'job', when: 'the image reference is malformed' },
  ROOT_JOB_REFUSED: { fault: 'job', when: 'the job runs as root' },
  MOUNT_REFUSED: { fault: 'job', when: 'a --container-mounts source the user cannot read, or the site does not let jobs mount; a target taken twice' },
  PATH_UNREACHABLE: { fault: 'job', when: "the runtime gate cannot open one of the job's own paths as its user (a mount source, home, the working directory)" },
  POLICY_DENIED: { fault: 'job', when: 'the site policy refuses the container' },
  IMAGE_NOT_FOUND: { fault: 'job', when: 'the image (or its digest) is not in the registry, e.g. removed since submit' },
  IMAGE_TOO_BIG: { fault: 'job', when: "the image alone is bigger than the node's image budget (imageGc.budgetBytes, a diskless node's RAM)" },
  IMAGE_ACCESS_DENIED: { fault: 'job', when: 'the registry refuses the user, or a private cached copy is not confirmed for them' },
  CREDENTIALS_UNSAFE: { fault: 'job', when: "the user's ~/.docker/config.json is readable by others, a symlink, or not theirs" },
  CREDENTIALS_INVALID: { fault: 'job', when: "the user's ~/.docker/config.json is not a docker login file" },
  REGISTRY_UNAVAILABLE: { fault: 'job', when: 'the registry cannot be reached for an image the node does not have' },
  PULL_FAILED: { fault: 'job', when: 'the registry served the image wrongly, or the pull stalled' },
  NAME_CLASH: { fault: 'job', when: "a --container-name of the job's runs another image or belongs to another user" },
  NO_CONTAINER: { fault: 'job', when: 'a step joins a container the job does not have' },
  JOB_NOT_RUNNING: { fault: 'job', when: "the job's container has stopped, or the job ended during its prolog" },
  JOB_NOT_FOUND: { fault: 'job', when: 'berth exec in a job without a container here' },
  JOB_FAULTED: { fault: 'job', when: "a step of a job whose container could not be made (the job's recorded fault)" },
  WORKDIR_MISSING: { fault: 'job', when: "a step's directory, or --container-workdir, is neither in the job's image or container nor among its mounts" },
  USER_NAME_UNSUPPORTED: { fault: 'job', when: "the job's user name cannot name a Docker client certificate (only that user's jobs fail)" },
  NODE_DRAINED: { fault: 'node', when: "the node is drained for container jobs (berth drain, or berthd's node check found something missing)", cause: 'node drained' },
  ENGINE_UNAVAILABLE: { fault: 'node', when: 'dockerd cannot be reached', cause: 'dockerd down' },
  ENGINE_FAILED: { fault: 'node', when: 'dockerd fails a pull, create or start for a reason of its own', cause: 'dockerd error' },
  DISK_FULL: { fault: 'node', when: "no space left on the node for the image, the container or berth's files", cause: 'disk full' },
  NODE_CONFIG: { fault: 'node', when: 'something every job needs from the node is missing (a site mount the runtime gate cannot open, a file)', cause: 'node config' },
  JOB_ID_IN_USE: { fault: 'node', when: "the job id still has another uid's running container here: an old job's epilog did not run on this node", cause: 'stale job' },
  NOT_SERVED_ON_NODE: { fault: 'node', when: "a step prologue to a berthd that does not launch container steps (the node's hooks and berthd disagree)", cause: 'steps off' },
  USER_UNKNOWN: { fault: 'node', when: "the node's name service does not know the job's user, or disagrees with Slurm", cause: 'user unknown' },
  SITE_CREDENTIALS_INVALID: { fault: 'node', when: "the site's registryCredentialsFile is unsafe or malformed", cause: 'site login' },
  AGENT_UNAVAILABLE: { fault: 'node', when: 'berthd is starting, recovering or stopping, or cannot be reached (after the retry window)', cause: 'berthd down' },
  TIMEOUT: { fault: 'node', when: 'berthd did not answer within the hook\'s deadline', cause: 'agent timeout' },
  PERMISSION_DENIED: { fault: 'node', when: 'the hook did not call as root (a hook misconfigured); for users: another user\'s job', cause: 'hook not root' },
  UNAUTHENTICATED: { fault: 'node', when: 'the hook did not call as root, or munge failed', cause: 'hook not root' },
  INVALID_REQUEST: { fault: 'node', when: 'the hook sent a request berthd cannot take (a hook or Slurm misconfigured)', cause: 'bad request' },
};

/** The class of a code; an unknown or missing code (no berth error, berthd not reached) is the node's. */
export function faultOf(code: string | undefined): FaultClass {
  return code !== undefined && Object.hasOwn(FAULTS, code) ? FAULTS[code as ErrorCode].fault : 'node';
}

/** the first words of the drain reason of a node fault with this code */
export function faultCause(code: string | undefined): string {
  return (code !== undefined && Object.hasOwn(FAULTS, code) ? FAULTS[code as ErrorCode].cause : undefined) ?? 'prolog failed';
}
