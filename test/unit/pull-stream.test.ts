import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { describe, it } from 'node:test';
import { consumePullStream, type PullProgress } from '../../services/agent/docker/pull-stream';

describe('pull progress stream', () => {
  it('succeeds when the stream ends without an error line', async () => {
    const s = new PassThrough();
    const p = consumePullStream(s, 1000, 1000);
    s.write('{"status":"Pulling fs layer"}\n{"status":"Downloaded"}');
    s.end('\n');
    await p;
  });

  it('fails on an error line even when the stream ends normally', async () => {
    const s = new PassThrough();
    const p = consumePullStream(s, 1000, 1000);
    s.end('{"status":"x"}\n{"errorDetail":{"message":"unauthorized"},"error":"unauthorized"}\n');
    await assert.rejects(p, /unauthorized/);
  });

  it('fails when no progress arrives for the inactivity period', async () => {
    const s = new PassThrough();
    await assert.rejects(consumePullStream(s, 5000, 50), /no progress for 0.05 s/);
  });
});

describe('pull progress', () => {
  it('adds up the layers of the progress stream', async () => {
    const s = new PassThrough();
    const seen: PullProgress[] = [];
    const p = consumePullStream(s, 1000, 1000, (x) => seen.push(x));
    s.write('{"status":"Pulling fs layer","id":"aaaaaaaaaaaa"}\n{"status":"Already exists","id":"bbbbbbbbbbbb"}\n');
    s.write('{"status":"Downloading","id":"aaaaaaaaaaaa","progressDetail":{"current":50,"total":200}}\n');
    s.end('{"status":"Pull complete","id":"aaaaaaaaaaaa"}\n{"status":"Digest: sha256:abc"}\n');
    await p;
    const { layers: during, ...sum } = seen.at(2)!;
    assert.deepEqual(sum, { currentBytes: 50, totalBytes: 200, layersDone: 1, layersTotal: 2, status: 'Downloading' });
    assert.deepEqual(during, [
      { id: 'aaaaaaaaaaaa', state: 'downloading', currentBytes: 50, totalBytes: 200 },
      { id: 'bbbbbbbbbbbb', state: 'done', currentBytes: 0, totalBytes: 0 },
    ]);
    const { layers: last, ...end } = seen.at(-1)!;
    assert.deepEqual(end, { currentBytes: 200, totalBytes: 200, layersDone: 2, layersTotal: 2, status: 'Pull complete' });
    assert.deepEqual(last.map((l) => l.state), ['done', 'done']);
  });

  it("follows each layer through dockerd's states: waiting, downloading, downloaded, extracting, done", async () => {
    const s = new PassThrough();
    const states: string[] = [];
    const p = consumePullStream(s, 1000, 1000, (x) => {
      const l = x.layers[0]!;
      states.push(`${l.state} ${l.currentBytes}/${l.totalBytes}`);
    });
    const id = 'cccccccccccc';
    for (const line of [
      { status: 'Pulling fs layer', id }, { status: 'Waiting', id },
      { status: 'Downloading', id, progressDetail: { current: 10, total: 100 } },
      { status: 'Verifying Checksum', id }, { status: 'Download complete', id },
      { status: 'Extracting', id, progressDetail: { current: 64, total: 120 } },
      { status: 'Pull complete', id },
    ]) s.write(`${JSON.stringify(line)}\n`);
    s.end();
    await p;
    assert.deepEqual(states, ['waiting 0/0', 'waiting 0/0', 'downloading 10/100', 'downloaded 100/100', 'downloaded 100/100', 'extracting 64/120', 'done 0/0']);
  });
});
