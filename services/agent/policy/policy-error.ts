// A policy file that cannot be used. The message holds one line per problem, each naming the
// file, the line or index, the policy and the key, so that an administrator can fix them all
// in one pass.
/** outside the catalogue: an operator's policy file that cannot be used, met at start (berthd exits) or on SIGHUP (logged, the old policy stays); never an RPC's answer */
export class PolicyError extends Error {
  override readonly name = 'PolicyError';
  constructor(readonly problems: readonly string[]) {
    super(problems.join('\n'));
  }
}
