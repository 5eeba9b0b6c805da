// berthd processes of a test's (or benchmark's) own: the built dist/berthd.js under node names
// of its own (fa1, fa2, ...), each with its run and state directories under one temporary
// directory and no authz section, all talking to one dockerd — sandbox node n1's, or the one
// BERTH_TEST_DOCKER_SOCKET names. stop() ends exactly the processes it started.
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { REPO, node } from './stack';

export const BERTHD = path.join(REPO, 'dist/berthd.js');
export const BERTH = path.join(REPO, 'dist/berth.js');

export function agentsDockerSocket(): string {
  return process.env.BERTH_TEST_DOCKER_SOCKET || node('n1').dockerSocket;
}

export interface OwnAgent {
  name: string;
  config: string;
  stateDir: string;
  output: string;
  process?: ChildProcess;
}

export interface OwnAgents {
  dir: string;
  runDir: string;
  agents: OwnAgent[];
  /** starts (or restarts) one agent and waits until its admin socket answers */
  start(agent: OwnAgent): Promise<void>;
  stopOne(agent: OwnAgent): Promise<void>;
  stop(): Promise<void>;
}

function requireBuild(): void {
  if (!existsSync(BERTHD) || !existsSync(BERTH)) throw new Error(`${BERTHD} or ${BERTH} is missing: run 'npm run build' first`);
}

async function connects(socket: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(socket, () => { s.destroy(); resolve(true); });
    s.on('error', () => resolve(false));
  });
}

/** EXTRA: more config keys per agent (e.g. remoteAccess) */
export async function startOwnAgents(names: string[], extra: (name: string, dir: string) => Record<string, unknown> = () => ({})): Promise<OwnAgents> {
  requireBuild();
  const dockerSocket = agentsDockerSocket();
  const dir = mkdtempSync(path.join(os.tmpdir(), 'berth-agents-'));
  const runDir = path.join(dir, 'run');
  const agents: OwnAgent[] = names.map((name) => {
    const base = path.join(dir, name);
    mkdirSync(base, { recursive: true });
    const config = path.join(base, 'berthd.json');
    const stateDir = path.join(base, 'state');
    writeFileSync(config, JSON.stringify({
      node: name, runDir, stateDir, dockerHost: `unix://${dockerSocket}`, accountingFile: path.join(base, 'accounting.jsonl'),
      logLevel: 'warn', orphanSchedule: '0 0 1 1 *', imageGc: { schedule: '0 0 1 1 *' }, ...extra(name, base),
    }));
    return { name, config, stateDir, output: path.join(base, 'berthd.out') };
  });
  const killAll = (): void => { for (const a of agents) a.process?.kill('SIGKILL'); };
  process.once('exit', killAll); // a test run that dies leaves no berthd behind

  const start = async (a: OwnAgent): Promise<void> => {
    const out = path.join(path.dirname(a.config), 'berthd.out');
    const fd = (await import('node:fs')).openSync(out, 'a');
    const child = spawn(process.execPath, [BERTHD, '--config', a.config], { stdio: ['ignore', fd, fd] });
    a.process = child;
    const socket = path.join(runDir, a.name, 'admin.sock');
    const deadline = Date.now() + 20_000;
    while (!(await connects(socket))) {
      if (child.exitCode !== null || Date.now() > deadline) {
        throw new Error(`berthd ${a.name} ${child.exitCode !== null ? `exited (${child.exitCode})` : 'made no admin socket within 20 s'}: ${readFileSync(out, 'utf8').slice(-1500)}`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  const stopOne = async (a: OwnAgent): Promise<void> => {
    const p = a.process;
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    const gone = once(p, 'exit');
    p.kill('SIGTERM');
    const t = setTimeout(() => p.kill('SIGKILL'), 10_000);
    await gone;
    clearTimeout(t);
  };
  const handle: OwnAgents = {
    dir, runDir, agents, start, stopOne,
    stop: async () => {
      await Promise.all(agents.map(stopOne));
      process.off('exit', killAll);
      rmSync(dir, { recursive: true, force: true });
    },
  };
  try {
    await Promise.all(agents.map(start));
  } catch (err) {
    await handle.stop();
    throw err;
  }
  return handle;
}
