// A mistake in how berth was called: said on stderr with a pointer to --help, exit status 2.
export class UsageError extends Error {
  override readonly name = 'UsageError';
}
