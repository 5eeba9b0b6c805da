// The berth command line (yargs): hooks for slurmd, `exec` for job users, queries for admins.
import yargs, { type Argv } from 'yargs';
import { dockerEnv, showJob, defaultNode } from './admin';
import { runExec } from './exec';
import type { FleetCommand, FleetOptions } from './fleet-run';
import { runHook } from './hook';
import { UsageError } from './usage-error';
import { type JobId, parseJobId } from '../shared/ids';
import { AGENT_VERSION as VERSION } from '../shared/version';

const FLEET_EPILOG = 'Exit status: 0 every node answered, 3 some did (the others are on stderr, or error entries with --json), 1 none did, 2 bad usage.';

/** --nodes and the options every many-node command shares */
function fleetOptions<T>(y: Argv<T>, env: Record<string, string | undefined>) {
  return y
    .option('nodes', { alias: 'node', type: 'string', default: defaultNode(env), describe: 'a node or a Slurm host list, e.g. n[001-512,600]; NODE:PORT reaches berthd over TCP' })
    .option('timeout', { type: 'number', describe: 'seconds to wait for each node (default: 10; images 20, prune 300, pull 900)' })
    .option('concurrency', { type: 'number', default: 64, describe: 'nodes asked at once' })
    .option('json', { type: 'boolean', default: false, describe: 'one JSON document for scripts (docs/api.md)' })
    .option('port', { type: 'number', describe: "berthd's TCP port (remoteAccess.listen): reach the nodes over mutual TLS (default $BERTH_PORT)" })
    .option('tls-ca', { type: 'string', describe: 'site CA that signed berthd\'s certificate (default $BERTH_TLS_CA)' })
    .option('tls-cert', { type: 'string', describe: 'client certificate the site CA signed (default $BERTH_TLS_CERT)' })
    .option('tls-key', { type: 'string', describe: 'its key (default $BERTH_TLS_KEY)' })
    .epilog(FLEET_EPILOG);
}

interface FleetArgs {
  nodes: string;
  timeout?: number;
  concurrency: number;
  json: boolean;
  port?: number;
  'tls-ca'?: string;
  'tls-cert'?: string;
  'tls-key'?: string;
}

function fleetOpts(a: FleetArgs, env: Record<string, string | undefined>): FleetOptions {
  if (a.concurrency !== undefined && !(Number.isInteger(a.concurrency) && a.concurrency >= 1)) throw new UsageError(`--concurrency ${a.concurrency} must be a whole number of 1 or more`);
  if (a.timeout !== undefined && !(a.timeout > 0)) throw new UsageError(`--timeout ${a.timeout} must be a positive number of seconds`);
  return {
    nodes: a.nodes, timeoutSeconds: a.timeout, concurrency: a.concurrency, json: a.json,
    conn: { port: a.port, tls: { ca: a['tls-ca'], cert: a['tls-cert'], key: a['tls-key'] }, env },
  };
}

async function fleet<T>(cmd: FleetCommand<T>, a: FleetArgs, env: Record<string, string | undefined>): Promise<number> {
  const { runFleet } = await import('./fleet-run');
  return runFleet(cmd, fleetOpts(a, env), { out: (s) => void process.stdout.write(s), err: (s) => void process.stderr.write(s) });
}

/** a job id from the command line, parsed once here: a malformed one is a usage error */
function jobArg(value: string, where: string): JobId {
  try {
    return parseJobId(value, where);
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

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
    .command('exec [command..]', "Run a command in the job's container on this node: srun berth exec -- CMD [ARGS...]; interactive: srun --pty berth exec -- bash", (y) => y
      .positional('command', { type: 'string', array: true, describe: 'the command and its arguments (put -- before it)' })
      .option('tty', { alias: 't', type: 'boolean', describe: 'give the command a terminal (default: when stdin and stdout are terminals, as with srun --pty); --no-tty for none' }), async (a) => {
      code = await runExec((a.command ?? []).map(String), env, { stdin: process.stdin, stdout: process.stdout, stderr: process.stderr }, { tty: a.tty });
    })
    .command('pull <image>', 'Pre-stage an image on nodes, in parallel, with progress per node (root)', (y) => fleetOptions(y, env)
      .positional('image', { type: 'string', demandOption: true }), async (a) => {
      const { runPull } = await import('./pull');
      const o = fleetOpts(a, env);
      code = await runPull(a.image, a.nodes, process.stdout, { json: o.json, timeoutSeconds: o.timeoutSeconds, concurrency: o.concurrency, conn: o.conn });
    })
    .command('status', 'Per node: agent version, state (serving, draining, recovering), uptime, jobs, containers, image cache, dockerd', (y) => fleetOptions(y, env), async (a) => {
      code = await fleet((await import('./fleet-commands')).statusCommand, a, env);
    })
    .command('containers', 'The containers berth manages on the nodes: job containers and those job users made', (y) => fleetOptions(y, env), async (a) => {
      code = await fleet((await import('./fleet-commands')).containersCommand, a, env);
    })
    .command('drain', 'Refuse new container jobs on the nodes (running jobs go on) until berth resume', (y) => fleetOptions(y, env)
      .option('reason', { type: 'string', demandOption: true, describe: 'why; shown to users whose jobs are refused' }), async (a) => {
      if (!a.reason.trim()) throw new UsageError('berth drain needs a --reason, shown to users whose jobs are refused');
      code = await fleet((await import('./fleet-commands')).drainCommand(true, a.reason), a, env);
    })
    .command('resume', 'Accept container jobs again on drained nodes', (y) => fleetOptions(y, env), async (a) => {
      code = await fleet((await import('./fleet-commands')).drainCommand(false, ''), a, env);
    })
    .command('images', "List the nodes' image caches: size, whether a container uses it, last use by a job", (y) => fleetOptions(y, env), async (a) => {
      code = await fleet((await import('./fleet-commands')).imagesCommand, a, env);
    })
    .command('prune', "Run the nodes' image GC now: least recently used unused images, down to the low watermark", (y) => fleetOptions(y, env)
      .option('all', { type: 'boolean', default: false, describe: 'every unused image past the minimum age, whatever the disk usage' })
      .option('dry-run', { type: 'boolean', default: false, describe: 'say what would be removed, remove nothing' }), async (a) => {
      code = await fleet((await import('./fleet-commands')).pruneCommand({ dryRun: a['dry-run'], all: a.all }), a, env);
    })
    .command('resolve <image>', 'Print IMAGE pinned to its digest (REGISTRY/NAME@sha256:...), as sbatch --container-image does', (y) => y
      .positional('image', { type: 'string', demandOption: true })
      .option('site-registries', { type: 'string', describe: 'comma-separated registries only the node agents hold credentials for: their images are printed unpinned (default $BERTH_SITE_REGISTRIES)' }), async (a) => {
      const { runResolve, siteRegistriesFromEnv } = await import('../shared/images/resolve');
      const siteRegistries = siteRegistriesFromEnv(a['site-registries'] !== undefined ? { BERTH_SITE_REGISTRIES: a['site-registries'] } : env);
      code = await runResolve(a.image, out, (s) => void process.stderr.write(s), { siteRegistries });
    })
    .command('submit-check', 'Check --container-* options as sbatch/salloc/srun do (run by the SPANK plugin): reads BERTH_CONTAINER_* variables, prints NAME=VALUE lines for the prolog', (y) => y, async () => {
      const [{ runSubmitCheck }, { siteRegistriesFromEnv }] = await Promise.all([import('../shared/submit-check'), import('../shared/images/resolve')]);
      // run by the plugin as the user, in the submit's directory (which BERTH_SUBMIT_CWD names too)
      code = await runSubmitCheck(env, out, (s) => void process.stderr.write(s), { cwd: process.cwd(), resolve: { siteRegistries: siteRegistriesFromEnv(env) } });
    })
    .command('site-rules', 'Show the site rules berth submit-check applies on this host, with their sha256 (compare with RULES in berth status)', (y) => y
      .option('file', { type: 'string', describe: 'the site rules file (default /etc/berth/site.json)' })
      .option('json', { type: 'boolean', default: false, describe: 'the rules as JSON' }), async (a) => {
      const { runSiteRules } = await import('./site-rules');
      code = runSiteRules(a.file, a.json, out, (s) => void process.stderr.write(s));
    })
    .command('jobs', "List the container jobs the nodes' agents hold (a user sees their own)", (y) => fleetOptions(y, env), async (a) => {
      code = await fleet((await import('./fleet-commands')).jobsCommand, a, env);
    })
    .command('job <id>', 'Show one job: container, image digest, steps', (y) => y
      .positional('id', { type: 'string', demandOption: true })
      .option('node', { type: 'string', default: defaultNode(env), describe: 'node to ask' })
      .option('json', { type: 'boolean', default: false, describe: 'JSON output for scripts' }), async (a) => {
      code = await showJob(a.node, jobArg(a.id, 'berth job'), a.json, out);
    })
    .command('accounting', "Accounting records (a job's and each step's, per node) from nodes' agents, merged by start time", (y) => y
      .option('since', { type: 'string', default: '1d', describe: 'records that ended at or after: ISO time (2026-05-01T08:00:00Z), a duration ago (30m, 2h, 7d) or now-30m' })
      .option('until', { type: 'string', describe: 'records that started at or before (same forms)' })
      .option('job', { type: 'string', describe: 'one job id' })
      .option('user', { type: 'string', describe: 'one user name (users see only their own records)' })
      .option('jobs-only', { type: 'boolean', default: false, describe: 'job records only, no step records' })
      .option('nodes', { type: 'string', default: defaultNode(env), describe: 'Slurm host list, e.g. n[1-3]' })
      .option('format', { type: 'string', default: 'csv', describe: 'csv or json (field reference: docs/accounting.md)' }), async (a) => {
      const { runAccounting } = await import('./accounting');
      code = await runAccounting({ since: a.since, until: a.until, job: a.job, user: a.user, nodes: a.nodes, format: a.format, jobsOnly: a['jobs-only'] },
        { out, err: (s) => void process.stderr.write(s) });
    })
    .command('docker-env', 'Print shell exports for the docker CLI in this job: eval "$(berth docker-env)"', (y) => y
      .option('node', { type: 'string', default: defaultNode(env), describe: 'node to ask' })
      .option('job', { type: 'string', default: env.SLURM_JOB_ID, describe: 'job id (default: SLURM_JOB_ID)' }), async (a) => {
      if (!a.job) throw new UsageError('docker-env needs a job: run it inside an allocation, or pass --job ID');
      code = await dockerEnv(a.node, jobArg(a.job, '--job'), out);
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
