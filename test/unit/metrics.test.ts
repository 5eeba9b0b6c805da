import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { AgentMetrics } from '../../services/agent/metrics/agent-metrics';
import { startMetricsServer } from '../../services/agent/metrics/metrics-server';
import { loadConfig, ConfigError } from '../../services/agent/config';

function sample(text: string, name: string, labels = ''): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${name}{`) && labels.split(',').every((p) => l.includes(p)));
  return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(' ') + 1));
}

describe('metrics', () => {
  it('counts what the services report, with the node label, on its own registry', async () => {
    const m = new AgentMetrics('n7', { processMetrics: false });
    m.cacheHit();
    m.cacheMiss();
    m.cacheMiss();
    m.pullSucceeded(1.2, 5_000_000);
    m.pullFailed('IMAGE_NOT_FOUND');
    m.containerStarted(0.2);
    m.stepStarted();
    m.stepStarted();
    m.stepEnded('FAILED');
    m.hookFailed('prolog', 'POLICY_DENIED');
    m.authzDecision(true);
    m.authzDecision(false);
    m.authzDecision(false);
    m.watch({ jobsRunning: () => 3, containersRunning: async () => 4, imageCacheBytes: async () => 123456 });
    const { body, contentType } = await m.scrape();
    assert.match(contentType, /^text\/plain/);
    assert.equal(sample(body, 'berth_image_cache_hits_total'), 1);
    assert.equal(sample(body, 'berth_image_cache_misses_total'), 2);
    assert.equal(sample(body, 'berth_image_pulls_total'), 1);
    assert.equal(sample(body, 'berth_image_pull_bytes_total'), 5_000_000);
    assert.equal(sample(body, 'berth_image_pull_duration_seconds_bucket', 'le="2.5"'), 1);
    assert.equal(sample(body, 'berth_image_pull_duration_seconds_bucket', 'le="1"'), 0);
    assert.equal(sample(body, 'berth_image_pull_errors_total', 'reason="IMAGE_NOT_FOUND"'), 1);
    assert.equal(sample(body, 'berth_container_start_latency_seconds_count'), 1);
    assert.equal(sample(body, 'berth_steps_running'), 1);
    assert.equal(sample(body, 'berth_steps_total', 'state="FAILED"'), 1);
    assert.equal(sample(body, 'berth_steps_total', 'state="COMPLETED"'), 0);
    assert.equal(sample(body, 'berth_hook_failures_total', 'hook="prolog",code="POLICY_DENIED"'), 1);
    assert.equal(sample(body, 'berth_authz_decisions_total', 'result="allow"'), 1);
    assert.equal(sample(body, 'berth_authz_decisions_total', 'result="deny"'), 2);
    assert.equal(sample(body, 'berth_jobs_running'), 3);
    assert.equal(sample(body, 'berth_containers_running'), 4);
    assert.equal(sample(body, 'berth_image_cache_size_bytes'), 123456);
    assert.match(body, /berth_jobs_running\{node="n7"\} 3/);
    assert.doesNotMatch(body, /process_resident_memory_bytes/, 'process metrics only when asked');
    const other = new AgentMetrics('n8', { processMetrics: false });
    assert.equal(sample((await other.scrape()).body, 'berth_image_cache_hits_total'), 0, 'two agents in one process do not share counts');
  });

  it('serves GET /metrics over HTTP on a loopback port, with process metrics, and 404 elsewhere', async () => {
    const m = new AgentMetrics('n1');
    const server = await startMetricsServer(m, '127.0.0.1:0', () => undefined);
    try {
      assert.match(server.address, /^127\.0\.0\.1:\d+$/);
      const ok = await fetch(`http://${server.address}/metrics`);
      assert.equal(ok.status, 200);
      const text = await ok.text();
      assert.match(text, /^process_resident_memory_bytes\{node="n1"\} \d+/m);
      assert.match(text, /^process_cpu_seconds_total\{node="n1"\} [\d.e-]+/m);
      assert.match(text, /^# TYPE berth_image_pulls_total counter$/m);
      assert.equal((await fetch(`http://${server.address}/`)).status, 404);
      assert.equal((await fetch(`http://${server.address}/metricsx`)).status, 404);
      assert.equal((await fetch(`http://${server.address}/metrics`, { method: 'POST' })).status, 405);
    } finally {
      await server.close();
    }
  });

  it('refuses a port already taken, with the address', async () => {
    const m = new AgentMetrics('n1', { processMetrics: false });
    const a = await startMetricsServer(m, '127.0.0.1:0', () => undefined);
    try {
      await assert.rejects(startMetricsServer(m, a.address, () => undefined), new RegExp(`cannot serve metrics on ${a.address.replace(/\./g, '\\.')}: .*EADDRINUSE`));
    } finally {
      await a.close();
    }
  });

  it('config: metrics off by default; listen must be HOST:PORT; rotation bounds checked', () => {
    const base = { node: 'n1' };
    assert.equal(loadConfig(undefined, base).metrics, undefined);
    assert.deepEqual(loadConfig(undefined, base).accountingRotation, { maxBytes: 64 * 1024 * 1024, keep: 10 });
    assert.equal(loadConfig(undefined, { ...base, metrics: { listen: '[::1]:9464' } }).metrics?.listen, '[::1]:9464');
    assert.throws(() => loadConfig(undefined, { ...base, metrics: { listen: '9464' } }), (e: unknown) => e instanceof ConfigError && /metrics\.listen: must be HOST:PORT/.test(e.message));
    assert.throws(() => loadConfig(undefined, { ...base, metrics: { listen: '127.0.0.1:70000' } }), (e: unknown) => e instanceof ConfigError && /port must be 1-65535/.test(e.message));
    assert.throws(() => loadConfig(undefined, { ...base, accountingRotation: { maxBytes: 10 } }), (e: unknown) => e instanceof ConfigError && /maxBytes must be 0 \(no rotation\) or at least 4096/.test(e.message));
  });
});
