// The Engine interface implemented with dockerode against one dockerd socket.
import Docker from 'dockerode';
import http from 'node:http';
import type { Duplex, Readable } from 'node:stream';
import * as tar from 'tar-stream';
import type {
  ContainerCreateSpec, ContainerDetails, ContainerSummary, Engine, ExecCreateOptions, ExecHandle, PullOptions, StateEngine, StoredContainer, StoredExec, VolumeInfo,
} from './engine';
import { engineMessage, engineStatus } from './engine';
import type { CachedImage } from '../housekeeping/image-gc';
import type { RegistryAuth } from '../../shared/images/credentials';
import { consumePullStream, type ProgressSink } from './pull-stream';
import { type ContainerUsage, readCgroupUsage, usageFromDockerStats } from './container-usage';

export class DockerodeEngine implements Engine, StateEngine {
  readonly docker: Docker;

  constructor(private readonly socketPath: string) {
    this.docker = new Docker({ socketPath });
  }

  async ping(): Promise<void> {
    await this.docker.ping();
  }

  /** GET /_ping?NAME=VALUE: a request dockerd passes through its AuthZ plugins like any other */
  pingWithQuery(query: Record<string, string>): Promise<void> {
    return new Promise((resolve, reject) => {
      // docker-modem builds the query from options for a path ending in '?'
      this.docker.modem.dial({ path: '/_ping?', method: 'GET', statusCodes: { 200: true }, options: query }, (err) => (err ? reject(err) : resolve()));
    });
  }

  /** the local image REF (a name, tag, digest or id); undefined when dockerd has none */
  private async inspectImage(ref: string): Promise<Docker.ImageInspectInfo | undefined> {
    try {
      return await this.docker.getImage(ref).inspect();
    } catch (err) {
      if (engineStatus(err) === 404) return undefined;
      throw err;
    }
  }

  async imagePresent(ref: string): Promise<boolean> {
    return (await this.inspectImage(ref)) !== undefined;
  }

  async imageId(ref: string): Promise<string | undefined> {
    return (await this.inspectImage(ref))?.Id;
  }

  /** the repository@digest names of the local image REF (a name, tag, digest or id); [] when absent */
  async imageRepoDigests(ref: string): Promise<string[]> {
    return (await this.inspectImage(ref))?.RepoDigests ?? [];
  }

  /** the local image REF's size in bytes (unpacked, as `docker images` shows it); undefined when absent */
  async imageSize(ref: string): Promise<number | undefined> {
    return (await this.inspectImage(ref))?.Size;
  }

  /** the image's own Config (Cmd, Entrypoint, Env, User, WorkingDir, Labels, ...); undefined when absent */
  async imageConfig(ref: string): Promise<Record<string, unknown> | undefined> {
    return (await this.inspectImage(ref))?.Config as Record<string, unknown> | undefined;
  }

  /**
   * docker commit of a container (paused meanwhile) as REPOSITORY:TAG with CONFIG as the new
   * image's config, so nothing of the container's own config (labels, environment, command) is
   * taken that CONFIG does not give. Returns the new image's id.
   */
  async commitContainer(id: string, repository: string, tag: string, config: Record<string, unknown>): Promise<string> {
    const res = (await this.docker.getContainer(id).commit({ _query: { container: id, repo: repository, tag, pause: true }, _body: config })) as { Id?: string };
    if (!res.Id) throw new Error(`docker commit of ${id} gave no image id`);
    return res.Id;
  }

  /** Pushes REF with AUTH; resolves when the progress stream ended without an error line. */
  async pushImage(ref: string, auth: RegistryAuth, opts: PullOptions): Promise<void> {
    const authconfig = { username: auth.username, password: auth.password, identitytoken: auth.identityToken, serveraddress: auth.registry };
    const stream = (await this.docker.getImage(ref).push({}, undefined, authconfig)) as Readable;
    await consumePullStream(stream, opts.timeoutMs, opts.inactivityMs);
  }

  async listImages(): Promise<CachedImage[]> {
    const list = await this.docker.listImages({ all: false });
    return list.map((i) => ({ id: i.Id, repoDigests: i.RepoDigests ?? [], repoTags: (i.RepoTags ?? []).filter((t) => t !== '<none>:<none>'), sizeBytes: i.Size, created: i.Created }));
  }

  async imagesInUse(): Promise<Set<string>> {
    const list = await this.docker.listContainers({ all: true });
    return new Set(list.map((c) => c.ImageID));
  }

  /** Removes an image with all its tags; refuses (409) while a container uses it. */
  async removeImage(id: string): Promise<void> {
    try {
      await this.docker.getImage(id).remove({ force: false, noprune: false });
    } catch (err) {
      if (engineStatus(err) === 404) return;
      if (engineStatus(err) === 409 && /must be forced|referenced in multiple repositories/.test(engineMessage(err))) {
        // several tags of one unused image: remove by id with force, which dockerd still refuses for images containers use
        await this.docker.getImage(id).remove({ force: true, noprune: false });
        return;
      }
      throw err;
    }
  }

  /** Where dockerd keeps images and containers (its DockerRootDir), for disk watermarks. */
  async dataRoot(): Promise<string> {
    return ((await this.docker.info()) as { DockerRootDir: string }).DockerRootDir;
  }

  /** dockerd's default OCI runtime and the runtimes it knows (for the node check: is berth-runc's socket ours?) */
  async runtimes(): Promise<{ defaultRuntime: string; runtimes: Record<string, { path: string; runtimeArgs: string[] }> }> {
    const info = (await this.docker.info()) as { DefaultRuntime?: string; Runtimes?: Record<string, { path?: string; runtimeArgs?: string[] }> };
    return {
      defaultRuntime: info.DefaultRuntime ?? 'runc',
      runtimes: Object.fromEntries(Object.entries(info.Runtimes ?? {}).map(([k, v]) => [k, { path: v.path ?? '', runtimeArgs: v.runtimeArgs ?? [] }])),
    };
  }

  async pull(ref: string, opts: PullOptions, onProgress?: ProgressSink, auth?: RegistryAuth): Promise<void> {
    // credentials travel to dockerd in X-Registry-Auth, for this pull only
    const authconfig = auth && { username: auth.username, password: auth.password, identitytoken: auth.identityToken, serveraddress: auth.registry };
    const stream = (await this.docker.pull(ref, authconfig ? { authconfig } : {})) as Readable;
    await consumePullStream(stream, opts.timeoutMs, opts.inactivityMs, onProgress);
    if (!(await this.imagePresent(ref))) throw new Error(`pull of ${ref} reported success but the image is not present`);
  }

  async create(spec: ContainerCreateSpec): Promise<string> {
    const c = await this.docker.createContainer({ name: spec.name, ...spec.body } as Docker.ContainerCreateOptions);
    return c.id;
  }

  async start(id: string): Promise<void> {
    try {
      await this.docker.getContainer(id).start();
    } catch (err) {
      if (engineStatus(err) !== 304) throw err; // 304: already started
    }
  }

  async inspect(id: string): Promise<ContainerDetails | undefined> {
    try {
      const i = await this.docker.getContainer(id).inspect();
      return {
        id: i.Id,
        name: i.Name.replace(/^\//, ''),
        labels: i.Config.Labels ?? {},
        state: i.State.Status,
        created: Math.floor(Date.parse(i.Created) / 1000),
        running: i.State.Running,
        startedAt: i.State.StartedAt,
        image: i.Config.Image,
        nanoCpus: i.HostConfig.NanoCpus ?? 0,
        memoryBytes: i.HostConfig.Memory ?? 0,
        devices: ((i.HostConfig.Devices ?? []) as { PathOnHost: string }[]).map((d) => d.PathOnHost),
        pid: i.State.Pid ?? 0,
        env: i.Config.Env ?? [],
      };
    } catch (err) {
      if (engineStatus(err) === 404) return undefined;
      throw err;
    }
  }

  /**
   * CPU and memory the container used so far: from its cgroup files (found through its init
   * process), else from dockerd's one-shot stats; undefined when it is not running.
   */
  async containerUsage(id: string): Promise<ContainerUsage | undefined> {
    let pid: number;
    try {
      const i = await this.docker.getContainer(id).inspect();
      if (!i.State.Running) return undefined;
      pid = i.State.Pid;
    } catch (err) {
      if (engineStatus(err) === 404) return undefined;
      throw err;
    }
    const fromCgroup = readCgroupUsage(pid);
    if (fromCgroup) return fromCgroup;
    const stats = await this.docker.getContainer(id).stats({ stream: false });
    return usageFromDockerStats(stats as Parameters<typeof usageFromDockerStats>[0]);
  }

  async listByLabel(label: string, value?: string): Promise<ContainerSummary[]> {
    const filter = value === undefined ? label : `${label}=${value}`;
    const list = await this.docker.listContainers({ all: true, filters: { label: [filter] } });
    return list.map((c) => ({
      id: c.Id,
      name: (c.Names[0] ?? '').replace(/^\//, ''),
      labels: c.Labels ?? {},
      state: c.State,
      created: c.Created,
    }));
  }

  async stop(id: string, graceMs: number): Promise<void> {
    try {
      // the Docker API takes whole seconds
      await this.docker.getContainer(id).stop({ t: Math.ceil(graceMs / 1000) });
    } catch (err) {
      const s = engineStatus(err);
      if (s !== 304 && s !== 404) throw err; // 304: not running; 404: gone
    }
  }

  async remove(id: string): Promise<void> {
    try {
      await this.docker.getContainer(id).remove({ force: true, v: true });
    } catch (err) {
      const s = engineStatus(err);
      if (s === 404) return;
      if (s === 409 && /already in progress/.test(String((err as Error).message))) return;
      throw err;
    }
  }

  async pathExists(id: string, file: string): Promise<boolean> {
    // HEAD /containers/{id}/archive answers from a stat, without making a tar; dockerode's
    // infoArchive never consumes the (empty) HEAD response and so leaks its socket
    const status = await new Promise<number>((resolve, reject) => {
      const req = http.request({
        socketPath: this.socketPath, method: 'HEAD', path: `/containers/${encodeURIComponent(id)}/archive?path=${encodeURIComponent(file)}`,
      }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.setTimeout(10_000, () => req.destroy(new Error('dockerd did not answer HEAD archive within 10 s')));
      req.on('error', reject);
      req.end();
    });
    if (status === 200) return true;
    if (status === 404) return false;
    throw Object.assign(new Error(`dockerd answered HTTP ${status} to HEAD archive of ${file}`), { statusCode: status });
  }

  async readFile(id: string, file: string): Promise<Buffer | undefined> {
    let archive: NodeJS.ReadableStream;
    try {
      archive = await this.docker.getContainer(id).getArchive({ path: file });
    } catch (err) {
      if (engineStatus(err) === 404) return undefined;
      throw err;
    }
    const extract = tar.extract();
    let found: Buffer | undefined;
    await new Promise<void>((resolve, reject) => {
      extract.on('entry', (header, stream, next) => {
        const chunks: Buffer[] = [];
        stream.on('data', (c: unknown) => chunks.push(c as Buffer));
        stream.on('end', () => {
          if (header.type === 'file' && found === undefined) found = Buffer.concat(chunks);
          next();
        });
        stream.resume();
      });
      extract.on('finish', resolve);
      extract.on('error', reject);
      (archive as Readable).on('error', reject).pipe(extract);
    });
    return found;
  }

  async storedContainer(idOrName: string): Promise<StoredContainer | undefined> {
    let i: Docker.ContainerInspectInfo;
    try {
      i = await this.docker.getContainer(idOrName).inspect();
    } catch (err) {
      if (engineStatus(err) === 404) return undefined;
      throw err;
    }
    const mounts = (i.Mounts ?? []) as unknown as { Type?: string; Name?: string; Source?: string; Destination?: string; Driver?: string }[];
    return {
      id: i.Id,
      name: i.Name.replace(/^\//, ''),
      labels: i.Config.Labels ?? {},
      running: i.State.Running,
      config: i.Config as unknown as Record<string, unknown>,
      hostConfig: i.HostConfig as unknown as Record<string, unknown>,
      mounts: mounts.map((m) => ({ type: m.Type ?? '', name: m.Name, source: m.Source ?? '', destination: m.Destination ?? '', driver: m.Driver })),
    };
  }

  async storedExec(execId: string): Promise<StoredExec | undefined> {
    try {
      const i = (await this.docker.getExec(execId).inspect()) as unknown as { ContainerID: string; Running: boolean; ProcessConfig?: { user?: string; privileged?: boolean } };
      return { containerId: i.ContainerID, user: i.ProcessConfig?.user ?? '', privileged: i.ProcessConfig?.privileged === true, running: i.Running };
    } catch (err) {
      if (engineStatus(err) === 404) return undefined;
      throw err;
    }
  }

  async volume(name: string): Promise<VolumeInfo | undefined> {
    try {
      const v = (await this.docker.getVolume(name).inspect()) as unknown as { Name: string; Driver: string; Options?: Record<string, string> | null; Labels?: Record<string, string> | null };
      return { name: v.Name, driver: v.Driver, options: v.Options ?? {}, labels: v.Labels ?? {} };
    } catch (err) {
      if (engineStatus(err) === 404) return undefined;
      throw err;
    }
  }

  async removeVolume(name: string): Promise<void> {
    try {
      await this.docker.getVolume(name).remove({ force: true });
    } catch (err) {
      if (engineStatus(err) !== 404) throw err;
    }
  }

  async execContainerId(execId: string): Promise<string | undefined> {
    try {
      return (await this.docker.getExec(execId).inspect()).ContainerID;
    } catch (err) {
      if (engineStatus(err) === 404) return undefined;
      throw err;
    }
  }

  async createExec(containerId: string, opts: ExecCreateOptions): Promise<ExecHandle> {
    const exec = await this.docker.getContainer(containerId).exec({
      Cmd: opts.cmd,
      User: opts.user,
      WorkingDir: opts.workingDir,
      Env: opts.env,
      Tty: opts.tty,
      AttachStdin: true,
      AttachStdout: true,
      AttachStderr: true,
    });
    return {
      id: exec.id,
      // ConsoleSize is read by engines with API >= 1.42 and ignored by older ones, where
      // berth-init sets the initial size instead (step-runner.ts)
      start: async () => (await exec.start({ hijack: true, stdin: true, Tty: opts.tty,
        ...(opts.tty && opts.consoleSize ? { ConsoleSize: [opts.consoleSize.rows, opts.consoleSize.cols] } : {}) })) as Duplex,
      resize: async (rows, cols) => {
        await exec.resize({ h: rows, w: cols });
      },
      inspect: async () => {
        const i = await exec.inspect();
        return { pid: i.Pid, running: i.Running, exitCode: i.ExitCode ?? null };
      },
    };
  }
}
