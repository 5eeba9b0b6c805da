// berthd's command line: --config FILE and the flags that override the config file. Parsed
// with node:util's parseArgs (yargs, which the CLI uses, is 250 KB of code berthd would keep
// loaded for as long as it runs, for nine flags read once).
import { parseArgs } from 'node:util';

const LOG_LEVELS = ['error', 'warn', 'info', 'debug'] as const;

const FLAGS = {
  config: 'JSON config file (see docs/configuration.md)',
  node: 'Slurm node name this agent serves',
  'run-dir': 'directory for the sockets (RUN_DIR/NODE/admin.sock, user.sock)',
  'state-dir': 'directory for job checkpoints',
  'docker-host': 'dockerd socket, unix:///path',
  'accounting-file': 'JSON-lines accounting log',
  'log-file': 'JSON log file (logs also go to stderr)',
  'log-level': `one of ${LOG_LEVELS.join(', ')}`,
  'init-binary': 'path of berth-init on the host',
} as const;

export type AgentArgs = { [K in keyof typeof FLAGS]?: string };

export const AGENT_USAGE = [
  'berthd --config FILE [flags]',
  '',
  'The berth node agent. Flags override the config file.',
  '',
  ...Object.entries(FLAGS).map(([name, what]) => `  --${name.padEnd(16)} ${what}`),
  '  --help             this text',
  '  --version          berthd\'s version',
].join('\n');

/** What the command line asks for; throws an Error saying what is wrong (with the usage) otherwise. */
export function parseAgentArgs(argv: string[]): { help: true } | { version: true } | { args: AgentArgs } {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        ...Object.fromEntries(Object.keys(FLAGS).map((k) => [k, { type: 'string' as const }])),
        help: { type: 'boolean' },
        version: { type: 'boolean' },
      },
    });
  } catch (err) {
    throw new Error(`${(err as Error).message}\n\n${AGENT_USAGE}`);
  }
  const v = parsed.values as Record<string, string | boolean | undefined>;
  if (v.help) return { help: true };
  if (v.version) return { version: true };
  const level = v['log-level'];
  if (level !== undefined && !(LOG_LEVELS as readonly unknown[]).includes(level)) {
    throw new Error(`--log-level ${String(level)}: give one of ${LOG_LEVELS.join(', ')}\n\n${AGENT_USAGE}`);
  }
  return { args: Object.fromEntries(Object.keys(FLAGS).map((k) => [k, v[k] as string | undefined]).filter(([, x]) => x !== undefined)) as AgentArgs };
}
