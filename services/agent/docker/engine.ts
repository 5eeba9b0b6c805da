// The narrow view of the Docker engine that berthd needs. The dockerode implementation is in
// dockerode-engine.ts; unit tests pass fakes that implement only these methods.
import type { Duplex } from 'node:stream';
import type { RegistryAuth } from '../../shared/images/credentials';
import type { ProgressSink } from './pull-stream';

export interface PullOptions {
  timeoutMs: number;
  inactivityMs: number;
}

export interface ImageEngine {
  imagePresent(ref: string): Promise<boolean>;
  /** the local image id (sha256:…) of ref; undefined when absent */
  imageId(ref: string): Promise<string | undefined>;
  /** Pulls ref; resolves only when the progress stream ended without error and the image is present. */
  pull(ref: string, opts: PullOptions, onProgress?: ProgressSink, auth?: RegistryAuth): Promise<void>;
}

export interface ContainerCreateSpec {
  name: string;
  body: Record<string, unknown>; // Docker Engine API ContainerCreate body
}

export interface ContainerSummary {
  id: string;
  name: string;
  labels: Record<string, string>;
  state: string; // created | running | exited | ...
  created: number; // seconds since the epoch
}

export interface ContainerDetails extends ContainerSummary {
  running: boolean;
  startedAt: string;
  image: string;
  /** the limits and devices it was created with */
  nanoCpus: number;
  memoryBytes: number;
  devices: string[];
  /** host PID of the container's first process (0 when not running) */
  pid: number;
  /** the container's environment: the image's, then what it was created with */
  env: string[];
}

/** A container as dockerd stored it (inspect): what it will act on at start, whatever the create request said. */
export interface StoredContainer {
  id: string;
  name: string;
  labels: Record<string, string>;
  running: boolean;
  /** inspect's Config: User, Image, Env, Cmd, Entrypoint, Labels, ... */
  config: Record<string, unknown>;
  /** inspect's HostConfig, with dockerd's defaults filled in */
  hostConfig: Record<string, unknown>;
  /** inspect's Mounts: binds, named and anonymous volumes, tmpfs, as dockerd will mount them */
  mounts: StoredMount[];
}

export interface StoredMount {
  type: string;
  /** a volume's name */
  name?: string;
  source: string;
  destination: string;
  driver?: string;
}

/** An exec instance as dockerd stored it. */
export interface StoredExec {
  containerId: string;
  user: string;
  privileged: boolean;
  running: boolean;
}

export interface VolumeInfo {
  name: string;
  driver: string;
  options: Record<string, string>;
  labels: Record<string, string>;
}

/** Reading what dockerd made, for judging it before it runs (authz/effect-gate.ts). */
export interface StateEngine {
  storedContainer(idOrName: string): Promise<StoredContainer | undefined>;
  storedExec(execId: string): Promise<StoredExec | undefined>;
  volume(name: string): Promise<VolumeInfo | undefined>;
  removeVolume(name: string): Promise<void>;
}

export interface ContainerEngine {
  create(spec: ContainerCreateSpec): Promise<string>;
  start(id: string): Promise<void>;
  inspect(id: string): Promise<ContainerDetails | undefined>;
  listByLabel(label: string, value?: string): Promise<ContainerSummary[]>;
  /** SIGTERM, then SIGKILL after graceMs (dockerd counts whole seconds: rounded up) */
  stop(id: string, graceMs: number): Promise<void>;
  remove(id: string): Promise<void>;
  /** Whether a path exists in the container's file system (image, layers and mounts). */
  pathExists(id: string, file: string): Promise<boolean>;
  /** Reads one regular file from a (created or running) container; undefined when absent. */
  readFile(id: string, file: string): Promise<Buffer | undefined>;
}

export interface ExecCreateOptions {
  cmd: string[];
  user: string;
  workingDir: string;
  env: string[];
  tty: boolean;
  /** with tty: the terminal's size when the process starts (engines with API >= 1.42 apply it at start) */
  consoleSize?: { rows: number; cols: number };
}

export interface ExecState {
  pid: number;
  running: boolean;
  exitCode: number | null;
}

export interface ExecHandle {
  id: string;
  /** Starts the process; the stream carries stdin one way and (multiplexed unless tty) output the other. */
  start(): Promise<Duplex>;
  inspect(): Promise<ExecState>;
  /** Sets the window size of a tty exec's terminal (the process gets SIGWINCH). */
  resize(rows: number, cols: number): Promise<void>;
}

export interface ExecEngine {
  createExec(containerId: string, opts: ExecCreateOptions): Promise<ExecHandle>;
  /** the container an exec instance belongs to; undefined when there is no such exec */
  execContainerId(execId: string): Promise<string | undefined>;
}

export type Engine = ImageEngine & ContainerEngine & ExecEngine;

/** An error from the engine with its HTTP status, when it had one. */
export function engineStatus(err: unknown): number | undefined {
  const code = (err as { statusCode?: unknown } | null)?.statusCode;
  return typeof code === 'number' ? code : undefined;
}

export function engineMessage(err: unknown): string {
  const e = err as { json?: { message?: string }; reason?: string; message?: string } | null;
  return e?.json?.message ?? e?.message ?? String(err);
}
