// `berth submit-check` as the CLI runs it, in a process of its own: reads
// {siteRulesFile, cases: env[]} as JSON on stdin and prints [{code, out, err}] for each, every
// default (uid, groups, home, name, ~/.docker/config.json, paths) taken from this process.
// test/unit/submit-check-rpc.test.ts runs it as another user, to compare berthd's SubmitCheck.
import { runSubmitCheck } from '../../services/shared/submit-check';

let input = '';
process.stdin.setEncoding('utf8').on('data', (d: string) => (input += d)).on('end', async () => {
  const { siteRulesFile, cases } = JSON.parse(input) as { siteRulesFile: string; cases: Record<string, string>[] };
  const results = [];
  for (const env of cases) {
    let out = '';
    let err = '';
    const code = await runSubmitCheck(env, (s) => (out += s), (s) => (err += s), { siteRulesFile, resolve: {} });
    results.push({ code, out, err });
  }
  process.stdout.write(JSON.stringify(results));
});
