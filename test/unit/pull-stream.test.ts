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
