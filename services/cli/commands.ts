// The berth command line (yargs): hooks for slurmd, `exec` for job users, queries for admins.
import yargs from 'yargs';
import { dockerEnv, listImages, listJobs, pruneImages, showJob, defaultNode } from './admin';
import { runExec } from './exec';
import { runHook } from './hook';
import { AGENT_VERSION as VERSION } from '../shared/version';

class UsageError extends Error {}

export async function runCli(args: string[]): Promise<number> {
  try {
    return await parse(args);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    process.stderr.write(`berth: ${err.message}\nRun 'berth --help', or 'berth COMMAND --help', for usage.\n`);
    return 2;
  }
}

async function parse(args: string[]): Promise<number> {
  let code = 0;
  const env = process.env;
  const out = (s: string): void => void process.stdout.write(s);
  await yargs(args)
    .scriptName('berth')
    .usage('$0 <command>\n\nDocker containers for Slurm jobs.')
    .command('hook <kind>', 'Slurm hooks, run by slurmd as root (Prolog=, Epilog=)', (y) => y
      .positional('kind', { choices: ['prolog', 'epilog'] as const, demandOption: true }), async (a) => {
      code = await runHook(a.kind, env, (l) => process.stderr.write(l + '\n'));
    })
    .command('exec [command..]', "Run a command in the job's container on this node: srun berth exec -- CMD [ARGS...]", (y) => y
      .positional('command', { type: 'string', array: true, describe: 'the command and its arguments (put -- before it)' }), async (a) => {
      code = await runExec((a.command ?? []).map(String), env, { stdin: process.stdin, stdout: process.stdout, stderr: process.stderr });
    })
    .command('pull <image>', 'Pre-stage an image on nodes, in parallel, with progress per node (root)', (y) => y
      .positional('image', { type: 'string', demandOption: true })
      .option('nodes', { type: 'string', default: defaultNode(env), describe: 'Slurm host list, e.g. n[1-3]' }), async (a) => {
      const { runPull } = await import('./pull');
      code = await runPull(a.image, a.nodes, process.stdout);
    })
    .command('images', "List a node's image cache: size, whether a container uses it, last use by a job", (y) => y
      .option('node', { type: 'string', default: defaultNode(env), describe: 'node to ask' })
      .option('json', { type: 'boolean', default: false, describe: 'JSON output for scripts' }), async (a) => {
      code = await listImages(a.node, a.json, out);
    })
    .command('prune', "Run a node's image GC now: least recently used unused images, down to the low watermark", (y) => y
      .option('node', { type: 'string', default: defaultNode(env), describe: 'node to ask' })
      .option('all', { type: 'boolean', default: false, describe: 'every unused image past the minimum age, whatever the disk usage' })
      .option('dry-run', { type: 'boolean', default: false, describe: 'say what would be removed, remove nothing' })
      .option('json', { type: 'boolean', default: false, describe: 'JSON output for scripts' }), async (a) => {
      code = await pruneImages(a.node, { dryRun: a['dry-run'], all: a.all, json: a.json }, out);
    })
    .command('resolve <image>', 'Print IMAGE pinned to its digest (REGISTRY/NAME@sha256:...), as sbatch --container-image does', (y) => y
      .positional('image', { type: 'string', demandOption: true })
      .option('site-registries', { type: 'string', describe: 'comma-separated registries only the node agents hold credentials for: their images are printed unpinned (default $BERTH_SITE_REGISTRIES)' }), async (a) => {
      const { runResolve, siteRegistriesFromEnv } = await import('./resolve');
      const siteRegistries = siteRegistriesFromEnv(a['site-registries'] !== undefined ? { BERTH_SITE_REGISTRIES: a['site-registries'] } : env);
      code = await runResolve(a.image, out, (s) => void process.stderr.write(s), { siteRegistries });
    })
    .command('submit-check', 'Check --container-* options as sbatch/salloc/srun do (run by the SPANK plugin): reads BERTH_CONTAINER_* variables, prints NAME=VALUE lines for the prolog', (y) => y, async () => {
      const [{ runSubmitCheck }, { siteRegistriesFromEnv }] = await Promise.all([import('./submit-check'), import('./resolve')]);
      code = await runSubmitCheck(env, out, (s) => void process.stderr.write(s), { resolve: { siteRegistries: siteRegistriesFromEnv(env) } });
    })
    .command('jobs', "List the container jobs a node's agent holds", (y) => y
      .option('node', { type: 'string', default: defaultNode(env), describe: 'node to ask' })
      .option('json', { type: 'boolean', default: false, describe: 'JSON output for scripts' }), async (a) => {
      code = await listJobs(a.node, a.json, out);
    })
    .command('job <id>', 'Show one job: container, image digest, steps', (y) => y
      .positional('id', { type: 'string', demandOption: true })
      .option('node', { type: 'string', default: defaultNode(env), describe: 'node to ask' })
      .option('json', { type: 'boolean', default: false, describe: 'JSON output for scripts' }), async (a) => {
      code = await showJob(a.node, a.id, a.json, out);
    })
    .command('docker-env', 'Print shell exports for the docker CLI in this job: eval "$(berth docker-env)"', (y) => y
      .option('node', { type: 'string', default: defaultNode(env), describe: 'node to ask' })
      .option('job', { type: 'string', default: env.SLURM_JOB_ID, describe: 'job id (default: SLURM_JOB_ID)' }), async (a) => {
      if (!a.job) throw new UsageError('docker-env needs a job: run it inside an allocation, or pass --job ID');
      code = await dockerEnv(a.node, a.job, out);
    })
    .demandCommand(1, 'say which command to run (see berth --help)')
    .strict()
    .version(VERSION)
    .help()
    .fail((msg, err) => {
      throw err ?? new UsageError(msg);
    })
    .parseAsync();
  return code;
}
