#!/usr/bin/env node
// berth CLI entry. slurmd runs `berth hook prolog|epilog` for every job on every node, so a
// job without a container returns before anything heavy is loaded; srun runs `berth exec`
// once per task and sbatch runs `berth submit-check` per submission, so they skip the option parser.
import { mungePayload, prefetchMunge } from '../shared/munge';
import { containerImage, hasStepFiles } from './slurm-env';

async function main(args: string[]): Promise<number> {
  if (args[0] === 'hook' && (args[1] === 'step-prolog' || args[1] === 'step-epilog') && args.length === 2) {
    const { runStepHook } = await import('./hook');
    return runStepHook(args[1], process.env, (l) => process.stderr.write(l + '\n'));
  }
  if (args[0] === 'hook' && (args[1] === 'prolog' || args[1] === 'epilog') && args.length === 2) {
    // a job without a container returns here; the epilog also runs for a job whose steps had
    // containers of their own (srun --container-image in a plain allocation)
    if (!containerImage(process.env) && !(args[1] === 'epilog' && hasStepFiles(process.env))) return 0;
    const { runHook } = await import('./hook');
    return runHook(args[1], process.env, (l) => process.stderr.write(l + '\n'));
  }
  if (args[0] === 'exec' && args[1] !== '--help' && args[1] !== '-h') {
    // munge encodes the call's credential while the gRPC client loads (~60 ms)
    const jobId = process.env.SLURM_JOB_ID ?? '';
    if (process.getuid?.() !== 0 && /^[0-9]+$/.test(jobId)) prefetchMunge(mungePayload('ExecStep', jobId));
    const { runExec, parseExecArgs } = await import('./exec');
    const { command, tty } = parseExecArgs(args.slice(1));
    return runExec(command, process.env, { stdin: process.stdin, stdout: process.stdout, stderr: process.stderr }, { tty });
  }
  if (args[0] === 'resolve' && args.length === 2 && !args[1]!.startsWith('-')) {
    const { runResolve, siteRegistriesFromEnv } = await import('../shared/images/resolve');
    return runResolve(args[1]!, (s) => process.stdout.write(s), (s) => process.stderr.write(s), { siteRegistries: siteRegistriesFromEnv(process.env) });
  }
  if (args[0] === 'submit-check' && args.length === 1) {
    const [{ runSubmitCheck }, { siteRegistriesFromEnv }] = await Promise.all([import('../shared/submit-check'), import('../shared/images/resolve')]);
    return runSubmitCheck(process.env, (s) => process.stdout.write(s), (s) => process.stderr.write(s), { resolve: { siteRegistries: siteRegistriesFromEnv(process.env) } });
  }
  const { runCli } = await import('./commands');
  return runCli(args);
}

main(process.argv.slice(2)).then(
  (code) => {
    // exit once output is flushed: an open stdin or a closing channel must not hold the task
    process.stdout.write('', () => process.stderr.write('', () => process.exit(code)));
  },
  (err: unknown) => {
    process.stderr.write(`berth: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  },
);
