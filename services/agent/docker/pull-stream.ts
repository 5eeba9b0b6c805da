// Reads a Docker pull progress stream (JSON lines). The pull failed if any line carries an
// `error`; it stalled if no line arrived for `inactivityMs`; it took too long after `timeoutMs`.
import type { Readable } from 'node:stream';

/** outside the catalogue: converted by images/image-service.ts (pullFailure, then classifyRegistryError: PULL_FAILED and kin) before any caller sees it */
export class PullStreamError extends Error {
  override readonly name = 'PullStreamError';
  constructor(message: string, readonly kind: 'error' | 'inactive' | 'timeout') {
    super(message);
  }
}

export type LayerState = 'waiting' | 'downloading' | 'downloaded' | 'extracting' | 'done';

/** One layer as the stream last told of it; bytes are of its current phase (download or extraction). */
export interface LayerProgress {
  id: string;
  state: LayerState;
  currentBytes: number;
  totalBytes: number;
}

/** Progress of a pull over all its layers, from the stream's per-layer progressDetail. */
export interface PullProgress {
  currentBytes: number;
  totalBytes: number;
  layersDone: number;
  layersTotal: number;
  status: string;
  /** each layer, in the order the stream first named it */
  layers: LayerProgress[];
}

/** dockerd's per-layer status → the layer's state; undefined for a status that does not change it */
function layerState(status: string): LayerState | undefined {
  if (status === 'Pulling fs layer' || status === 'Waiting') return 'waiting';
  if (status === 'Downloading') return 'downloading';
  if (status === 'Verifying Checksum' || status === 'Download complete') return 'downloaded';
  if (status === 'Extracting') return 'extracting';
  if (status === 'Pull complete' || status === 'Already exists') return 'done';
  return undefined;
}

export type ProgressSink = (p: PullProgress) => void;

export function consumePullStream(stream: Readable, timeoutMs: number, inactivityMs: number, onProgress?: ProgressSink): Promise<void> {
  const layers = new Map<string, { current: number; total: number; done: boolean; state: LayerState; phaseCurrent: number; phaseTotal: number }>();
  const report = (status: string): void => {
    if (!onProgress) return;
    let currentBytes = 0;
    let totalBytes = 0;
    let layersDone = 0;
    for (const l of layers.values()) {
      currentBytes += l.done ? l.total : l.current;
      totalBytes += l.total;
      if (l.done) layersDone++;
    }
    onProgress({ currentBytes, totalBytes, layersDone, layersTotal: layers.size, status,
      layers: [...layers].map(([id, l]) => ({ id, state: l.state, currentBytes: l.phaseCurrent, totalBytes: l.phaseTotal })) });
  };
  return new Promise((resolve, reject) => {
    let buffered = '';
    let settled = false;
    const finish = (err?: Error): void => {
      if (settled) return;
      settled = true;
      clearTimeout(overall);
      clearTimeout(idle);
      if (err) {
        stream.destroy();
        reject(err);
      } else resolve();
    };
    const overall = setTimeout(() => finish(new PullStreamError(`pull did not finish within ${timeoutMs / 1000} s`, 'timeout')), timeoutMs);
    let idle = setTimeout(() => undefined, 0);
    const armIdle = (): void => {
      clearTimeout(idle);
      idle = setTimeout(() => finish(new PullStreamError(`pull made no progress for ${inactivityMs / 1000} s`, 'inactive')), inactivityMs);
    };
    const handleLine = (line: string): void => {
      if (!line.trim()) return;
      let msg: { error?: string; errorDetail?: { message?: string }; id?: string; status?: string; progressDetail?: { current?: number; total?: number } };
      try {
        msg = JSON.parse(line) as typeof msg;
      } catch {
        return;
      }
      if (msg.error || msg.errorDetail) return finish(new PullStreamError(msg.errorDetail?.message ?? msg.error ?? 'pull failed', 'error'));
      if (msg.id && msg.status && /^[a-f0-9]{12}$/.test(msg.id)) {
        const l = layers.get(msg.id) ?? { current: 0, total: 0, done: false, state: 'waiting', phaseCurrent: 0, phaseTotal: 0 };
        if (msg.status === 'Downloading' && msg.progressDetail?.total) {
          l.current = msg.progressDetail.current ?? l.current;
          l.total = msg.progressDetail.total;
        }
        const state = layerState(msg.status);
        if (state && !(l.state === 'done' && state !== 'done')) {
          if (state !== l.state) [l.phaseCurrent, l.phaseTotal] = [0, 0];
          l.state = state;
          if (state === 'downloading' || state === 'extracting') {
            l.phaseCurrent = msg.progressDetail?.current ?? l.phaseCurrent;
            l.phaseTotal = msg.progressDetail?.total ?? l.phaseTotal;
          }
          if (state === 'downloaded') [l.phaseCurrent, l.phaseTotal] = [l.total, l.total];
        }
        if (/^(Pull complete|Already exists|Download complete)$/.test(msg.status)) l.done = msg.status !== 'Download complete' || l.done;
        layers.set(msg.id, l);
        report(msg.status);
      }
    };
    armIdle();
    stream.setEncoding('utf8');
    stream.on('data', (chunk: string) => {
      armIdle();
      buffered += chunk;
      let nl: number;
      while ((nl = buffered.indexOf('\n')) >= 0) {
        handleLine(buffered.slice(0, nl));
        buffered = buffered.slice(nl + 1);
      }
    });
    stream.on('end', () => {
      handleLine(buffered);
      finish();
    });
    stream.on('error', (err) => finish(err));
  });
}
