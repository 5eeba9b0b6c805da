// A mistake in how berth was called: said on stderr with a pointer to --help, exit status 2.
/** outside the catalogue: the CLI's own usage error (exit 2, before any node is asked); it never crosses the wire */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}
