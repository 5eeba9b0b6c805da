// berthd's Prometheus metrics, on a Registry of its own (never prom-client's global one):
// main builds one AgentMetrics and hands it to the services, each of which sees only the
// narrow interface below that it reports through. Gauges that describe state (jobs and
// containers running, the image cache's size) are read from their sources at scrape time.
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';

/** image-service.ts: cache look-ups and pulls */
export interface ImageMetrics {
  cacheHit(): void;
  cacheMiss(): void;
  pullSucceeded(seconds: number, bytes: number): void;
  pullFailed(reason: string): void;
}

/** job-service.ts: container starts and steps */
export interface JobMetrics {
  containerStarted(latencySeconds: number): void;
  stepStarted(): void;
  stepEnded(state: 'COMPLETED' | 'FAILED' | 'CANCELLED'): void;
}

/** server/agent-service.ts: what slurmd's prolog and epilog hooks were told */
export interface HookMetrics {
  hookFailed(hook: 'prolog' | 'epilog', code: string): void;
}

/** authz/authorizer.ts: every AuthZ plugin decision */
export interface AuthzMetrics {
  authzDecision(allow: boolean): void;
}

/** Read at scrape time; a source that throws leaves its gauge at the last value. */
export interface StateSources {
  jobsRunning(): number;
  containersRunning(): Promise<number>;
  imageCacheBytes(): Promise<number>;
}

const PULL_SECONDS = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600];
const START_SECONDS = [0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1, 2, 5, 10];

/** how often the event-loop lag metrics sample: no timer of berthd's fires more often than once a minute when idle */
export const EVENT_LOOP_SAMPLE_MS = 60_000;

export class AgentMetrics implements ImageMetrics, JobMetrics, HookMetrics, AuthzMetrics {
  readonly registry = new Registry();
  private sources: StateSources | undefined;
  private readonly pulls: Counter;
  private readonly pullBytes: Counter;
  private readonly pullSeconds: Histogram;
  private readonly pullErrors: Counter<'reason'>;
  private readonly cacheHits: Counter;
  private readonly cacheMisses: Counter;
  private readonly startSeconds: Histogram;
  private readonly steps: Counter<'state'>;
  private readonly stepsRunning: Gauge;
  private readonly hookFailures: Counter<'hook' | 'code'>;
  private readonly authz: Counter<'result'>;

  constructor(node: string, opts: { processMetrics?: boolean } = {}) {
    const registers = [this.registry];
    this.registry.setDefaultLabels({ node });
    // prom-client samples event-loop lag with a libuv timer at this resolution (10 ms by
    // default: a hundred wake-ups a second on an idle compute node, OS noise for MPI jobs);
    // once a minute keeps the lag gauges and the node quiet
    if (opts.processMetrics ?? true) collectDefaultMetrics({ register: this.registry, eventLoopMonitoringPrecision: EVENT_LOOP_SAMPLE_MS });
    this.pulls = new Counter({ name: 'berth_image_pulls_total', help: 'Image pulls that completed', registers });
    this.pullBytes = new Counter({ name: 'berth_image_pull_bytes_total', help: 'Bytes downloaded by completed image pulls (compressed layers)', registers });
    this.pullSeconds = new Histogram({ name: 'berth_image_pull_duration_seconds', help: 'Duration of completed image pulls', buckets: PULL_SECONDS, registers });
    this.pullErrors = new Counter({ name: 'berth_image_pull_errors_total', help: 'Image pulls that failed, by berth error code', labelNames: ['reason'], registers });
    this.cacheHits = new Counter({ name: 'berth_image_cache_hits_total', help: 'Image requests the node already had the digest for', registers });
    this.cacheMisses = new Counter({ name: 'berth_image_cache_misses_total', help: 'Image requests that needed a pull', registers });
    this.startSeconds = new Histogram({ name: 'berth_container_start_latency_seconds', help: 'Job container create + start', buckets: START_SECONDS, registers });
    this.steps = new Counter({ name: 'berth_steps_total', help: 'Steps that ended, by state', labelNames: ['state'], registers });
    this.stepsRunning = new Gauge({ name: 'berth_steps_running', help: 'Steps running now', registers });
    this.hookFailures = new Counter({ name: 'berth_hook_failures_total', help: 'JobPrologue and JobEpilogue calls that failed, by hook and berth error code', labelNames: ['hook', 'code'], registers });
    this.authz = new Counter({ name: 'berth_authz_decisions_total', help: 'Docker AuthZ plugin decisions, by result', labelNames: ['result'], registers });
    const self = this;
    new Gauge({
      name: 'berth_jobs_running', help: 'Container jobs in state RUNNING on this node', registers,
      collect() {
        if (self.sources) this.set(self.sources.jobsRunning());
      },
    });
    new Gauge({
      name: 'berth_containers_running', help: 'Running containers carrying this node\'s berth labels', registers,
      async collect() {
        if (self.sources) this.set(await self.sources.containersRunning().catch(() => NaN));
      },
    });
    new Gauge({
      name: 'berth_image_cache_size_bytes', help: 'Size of the images in dockerd\'s cache', registers,
      async collect() {
        if (self.sources) this.set(await self.sources.imageCacheBytes().catch(() => NaN));
      },
    });
    // so that a series exists (at 0) before the first event: rates and ratios work from the start
    for (const state of ['COMPLETED', 'FAILED', 'CANCELLED']) this.steps.inc({ state }, 0);
    for (const result of ['allow', 'deny']) this.authz.inc({ result }, 0);
  }

  /** Where the state gauges read from; set once the job table and engine exist. */
  watch(sources: StateSources): void {
    this.sources = sources;
  }

  cacheHit(): void {
    this.cacheHits.inc();
  }

  cacheMiss(): void {
    this.cacheMisses.inc();
  }

  pullSucceeded(seconds: number, bytes: number): void {
    this.pulls.inc();
    this.pullBytes.inc(bytes);
    this.pullSeconds.observe(seconds);
  }

  pullFailed(reason: string): void {
    this.pullErrors.inc({ reason });
  }

  containerStarted(latencySeconds: number): void {
    this.startSeconds.observe(latencySeconds);
  }

  stepStarted(): void {
    this.stepsRunning.inc();
  }

  stepEnded(state: 'COMPLETED' | 'FAILED' | 'CANCELLED'): void {
    this.stepsRunning.dec();
    this.steps.inc({ state });
  }

  hookFailed(hook: 'prolog' | 'epilog', code: string): void {
    this.hookFailures.inc({ hook, code });
  }

  authzDecision(allow: boolean): void {
    this.authz.inc({ result: allow ? 'allow' : 'deny' });
  }

  /** The exposition text and its content type, for GET /metrics. */
  async scrape(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}
