// berthd's SubmitChecker in a process of its own: reads {siteRulesFile, caller, env} as JSON on
// stdin and prints the answer, or {error, code} for a refusal of the call. Run as a user that
// is not root by test/unit/submit-check-rpc.test.ts, to stand for a berthd that may not look
// where the caller can (root on a root-squashed home).
import { NssIdentityResolver } from '../../services/agent/identity/nss';
import { SubmitChecker } from '../../services/agent/submit/submit-checker';
import type { Caller } from '../../services/agent/auth/caller';
import { BerthError } from '../../services/shared/errors';
import { loadSiteRules } from '../../services/shared/site-rules';

let input = '';
process.stdin.setEncoding('utf8').on('data', (d: string) => (input += d)).on('end', async () => {
  const { siteRulesFile, caller, env } = JSON.parse(input) as { siteRulesFile: string; caller: Caller; env: Record<string, string> };
  const checker = new SubmitChecker({ identities: new NssIdentityResolver(), siteRules: () => loadSiteRules(siteRulesFile) });
  try {
    process.stdout.write(JSON.stringify(await checker.check(caller, Object.entries(env).map(([name, value]) => ({ name, value })))));
  } catch (err) {
    process.stdout.write(JSON.stringify({ error: (err as Error).message, code: err instanceof BerthError ? err.code : '' }));
  }
});
