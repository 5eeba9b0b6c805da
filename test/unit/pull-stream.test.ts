import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { describe, it } from 'node:test';
import { consumePullStream } from '../../services/agent/docker/pull-stream';

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
    const seen: { currentBytes: number; totalBytes: number; layersDone: number; layersTotal: number }[] = [];
    const p = consumePullStream(s, 1000, 1000, (x) => seen.push(x));
    s.write('{"status":"Pulling fs layer","id":"aaaaaaaaaaaa"}\n{"status":"Already exists","id":"bbbbbbbbbbbb"}\n');
    s.write('{"status":"Downloading","id":"aaaaaaaaaaaa","progressDetail":{"current":50,"total":200}}\n');
    s.end('{"status":"Pull complete","id":"aaaaaaaaaaaa"}\n{"status":"Digest: sha256:abc"}\n');
    await p;
    assert.deepEqual(seen.at(2), { currentBytes: 50, totalBytes: 200, layersDone: 1, layersTotal: 2, status: 'Downloading' });
    assert.deepEqual(seen.at(-1), { currentBytes: 200, totalBytes: 200, layersDone: 2, layersTotal: 2, status: 'Pull complete' });
  });
});
