import assert from 'node:assert/strict';
import { writeFileSync, mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { ConfigError, loadConfig } from '../../services/agent/config';

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
    assert.equal(c.stopGraceSeconds, 10);
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
});
