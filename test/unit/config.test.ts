import assert from 'node:assert/strict';
import { writeFileSync, mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { ConfigError, loadConfig } from '../../services/agent/config';
import { builtinSiteRules } from '../../services/shared/site-rules';
import { protectedPaths } from '../../services/shared/site-rules-check';

function file(content: string): string {
  const f = path.join(mkdtempSync(path.join(os.tmpdir(), 'berth-cfg-')), 'berthd.json');
  writeFileSync(f, content);
  return f;
}

describe('berthd configuration', () => {
  it('fills defaults and freezes the result', () => {
    const c = loadConfig(file('{"node":"n7"}'), {});
    assert.equal(c.node, 'n7');
    assert.equal(c.runDir, '/run/berth');
    assert.equal(c.stopGraceMs, 10_000);
    assert.deepEqual(c.rdmaDevices, ['/dev/infiniband/uverbs*', '/dev/infiniband/rdma_cm']);
    assert.ok(Object.isFrozen(c));
    assert.throws(() => { (c as { node: string }).node = 'x'; });
  });

  it('lets flags override the file', () => {
    const c = loadConfig(file('{"node":"n7","logLevel":"info"}'), { node: 'n8', logLevel: 'debug', stateDir: undefined });
    assert.equal(c.node, 'n8');
    assert.equal(c.logLevel, 'debug');
  });

  it('names every bad entry with its path', () => {
    assert.throws(() => loadConfig(file('{"rdmaDevices":["rel"],"stopGraceSeconds":"5","extra":1,"mounts":[]}'), {}), (e: unknown) => {
      assert.ok(e instanceof ConfigError);
      assert.match(e.message, /rdmaDevices\.0: must be an absolute path/);
      assert.match(e.message, /mounts: has moved to the site rules file/);
      assert.match(e.message, /stopGraceSeconds: Expected number/);
      assert.match(e.message, /Unrecognized key\(s\) in object: 'extra'/);
      return true;
    });
  });

  it('says when the file is missing or not JSON', () => {
    assert.throws(() => loadConfig('/nonexistent/berthd.json', {}), /cannot read config file \/nonexistent\/berthd.json: ENOENT/);
    assert.throws(() => loadConfig(file('{node:'), {}), /is not valid JSON/);
    assert.throws(() => loadConfig(file('[1]'), {}), /must hold one JSON object/);
  });

  it('refuses a docker host that is not a unix socket', () => {
    assert.throws(() => loadConfig(undefined, { dockerHost: 'tcp://127.0.0.1:2375' }), /dockerHost: must be unix:\/\/\/path/);
  });

  it('compiles every duration into milliseconds once, and keeps no seconds', () => {
    const c = loadConfig(file('{"stopGraceSeconds":3,"pullTimeoutSeconds":90,"pullInactivitySeconds":15,"mungeMaxAgeSeconds":60,"orphanGraceSeconds":0,"imageGc":{"minAgeSeconds":7200}}'), {});
    assert.deepEqual([c.stopGraceMs, c.pullTimeoutMs, c.pullInactivityMs, c.mungeMaxAgeMs, c.orphanGraceMs, c.imageGc.minAgeMs], [3000, 90_000, 15_000, 60_000, 0, 7_200_000]);
    const d = loadConfig(undefined, {});
    assert.deepEqual([d.stopGraceMs, d.pullTimeoutMs, d.pullInactivityMs, d.mungeMaxAgeMs, d.orphanGraceMs, d.imageGc.minAgeMs], [10_000, 600_000, 120_000, 120_000, 300_000, 3_600_000], 'the defaults too');
    const keys = (o: object): string[] => Object.entries(o).flatMap(([k, v]) => [k, ...(v && typeof v === 'object' && !Array.isArray(v) ? keys(v) : [])]);
    assert.deepEqual(keys(c).filter((k) => /Seconds$/.test(k)), [], 'no duration is left in seconds for a use site to convert');
  });

  it('freezes the compiled config all the way down: a mutation throws (strict mode)', () => {
    const c = loadConfig(file('{"mirrors":{"reg:5000":["m1:5000"]},"authz":{"policyFile":"/etc/berth/policy.json"},"remoteAccess":{"listen":"0.0.0.0:7443","certFile":"/c","keyFile":"/k","caFile":"/a","clients":{"ops":["read"]}}}'), {});
    const mutations: [string, () => unknown][] = [
      ['a top-level key', () => { (c as { stateDir: string }).stateDir = '/tmp'; }],
      ['a nested section', () => { (c.imageGc as { highPercent: number }).highPercent = 1; }],
      ['an optional section', () => { (c.authz as { runtime: string }).runtime = 'runc'; }],
      ['a list', () => { (c.rdmaDevices as string[]).push('/dev/x'); }],
      ['a list in a section', () => { (c.authz!.logDrivers as string[])[0] = 'syslog'; }],
      ['a map', () => { (c.mirrors as Record<string, string[]>)['evil:1'] = []; }],
      ['a map\'s list', () => { (c.mirrors['reg:5000'] as string[]).push('evil:5000'); }],
      ['a role list', () => { (c.remoteAccess!.clients.ops as string[]).push('admin'); }],
      ['the protected paths', () => { (c.ownPaths as unknown as unknown[]).pop(); }],
      ['a protected path', () => { (c.ownPaths[0] as { path: string }).path = '/'; }],
    ];
    for (const [what, mutate] of mutations) assert.throws(mutate, TypeError, what);
    assert.deepEqual(c.mirrors, { 'reg:5000': ['m1:5000'] });
    assert.equal(c.ownPaths.length, 4);
  });

  it("lists berthd's own paths once, at load, and the mount checks read that one list", () => {
    const c = loadConfig(undefined, { node: 'n3', runDir: '/run/b', stateDir: '/var/lib/b', dockerHost: 'unix:///run/d.sock', initBinary: '/opt/berth/bin/berth-init' });
    assert.deepEqual(c.ownPaths.map((p) => [p.key, p.path, p.source]), [
      ['runDir', '/run/b', "berthd's runDir on n3"],
      ['stateDir', '/var/lib/b', "berthd's stateDir on n3"],
      ['dockerHost', '/run/d.sock', "berthd's dockerHost on n3"],
      ['initBinary', '/opt/berth/bin', "berthd's initBinary on n3"],
    ]);
    assert.equal(c.ownPaths, c.ownPaths, 'a value, not a getter that builds it');
    const rules = builtinSiteRules();
    const list = protectedPaths(rules, c.ownPaths);
    assert.equal(protectedPaths(rules, c.ownPaths), list, 'built once for the rules and the own paths: every request reads the same list');
    assert.ok(Object.isFrozen(list));
    assert.deepEqual(list.slice(-4).map((p) => p.path), c.ownPaths.map((p) => p.path));
    assert.notEqual(protectedPaths(builtinSiteRules({ protectedPaths: ['/srv'] }), c.ownPaths), list, 'new rules (a SIGHUP) make a new list');
    assert.ok(protectedPaths(builtinSiteRules({ protectedPaths: ['/srv'] }), c.ownPaths).some((p) => p.path === '/srv'));
  });
});
