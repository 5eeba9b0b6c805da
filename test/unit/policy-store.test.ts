import assert from 'node:assert/strict';
import { mkdtempSync, renameSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import type { Logger } from '../../services/agent/logger';
import { PolicyError } from '../../services/agent/policy/policy-error';
import { PolicyStore } from '../../services/agent/policy/policy-store';

const policy = (name: string): string => `{"name":"${name}","users":["*"],"actions":["docker_ping"]}\n`;

function recordingLogger(): { log: Logger; lines: { level: string; msg: string; meta: Record<string, unknown> }[] } {
  const lines: { level: string; msg: string; meta: Record<string, unknown> }[] = [];
  const at = (level: string) => (msg: string, meta: Record<string, unknown> = {}) => lines.push({ level, msg, meta });
  return { log: { info: at('info'), warn: at('warn'), error: at('error'), debug: at('debug') } as unknown as Logger, lines };
}

function file(text: string): string {
  const f = path.join(mkdtempSync(path.join(os.tmpdir(), 'berth-policy-store-')), 'policies.jsonl');
  writeFileSync(f, text);
  return f;
}

async function until(cond: () => boolean, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) assert.fail('timed out');
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('policy store', () => {
  it('loads the file and serves the same set until a reload succeeds', () => {
    const { log, lines } = recordingLogger();
    const store = new PolicyStore(file(policy('a')), log);
    assert.throws(() => store.current(), /asked for before load/);
    store.load();
    const first = store.current();
    assert.equal(store.current(), first);
    assert.deepEqual(first.policies.map((p) => p.name), ['a']);
    assert.deepEqual(lines[0]?.meta.policies, ['a']);
  });

  it('refuses a bad file at the first load, saying where', () => {
    const store = new PolicyStore(file(`${policy('a')}{"name":"b","users":["*"],"actions":["("]}\n`), recordingLogger().log);
    assert.throws(() => store.load(), (e: unknown) => e instanceof PolicyError && /policies\.jsonl:2: policy 'b': actions\[0\] '\(' is not a valid regular expression/.test(e.message));
    assert.throws(() => new PolicyStore('/nonexistent/berth/policies.json', recordingLogger().log).load(), /nonexistent\/berth\/policies\.json: cannot be read \(ENOENT\)/);
  });

  it('keeps the old policies when the new file is bad, and logs why', () => {
    const { log, lines } = recordingLogger();
    const f = file(policy('a'));
    const store = new PolicyStore(f, log);
    store.load();
    writeFileSync(f, '{"name":"a","users":["*"],"actions":["docker_pnig"]}\n');
    assert.equal(store.reload(), false);
    assert.deepEqual(store.current().policies.map((p) => p.name), ['a']);
    assert.deepEqual(store.current().policies[0]!.allow.map((x) => x.text), ['docker_ping']);
    const err = lines.find((l) => l.level === 'error');
    assert.match(String(err?.meta.error), /'docker_pnig' is not an action berth knows; close: docker_ping/);
    writeFileSync(f, policy('b'));
    assert.equal(store.reload(), true);
    assert.deepEqual(store.current().policies.map((p) => p.name), ['b']);
  });

  it('reloads when the file is replaced, and not when the replacement is bad', async () => {
    const { log } = recordingLogger();
    const f = file(policy('a'));
    const store = new PolicyStore(f, log, { debounceMs: 20 });
    store.load();
    store.watch();
    try {
      // an editor's save: a new file renamed over the old one
      writeFileSync(`${f}.tmp`, policy('b'));
      renameSync(`${f}.tmp`, f);
      await until(() => store.current().policies[0]!.name === 'b');
      const good = store.current();
      writeFileSync(f, '{"name":');
      await new Promise((r) => setTimeout(r, 200));
      assert.equal(store.current(), good);
      writeFileSync(path.join(path.dirname(f), 'unrelated.json'), policy('zzz'));
      await new Promise((r) => setTimeout(r, 100));
      assert.equal(store.current(), good);
    } finally {
      store.close();
    }
    writeFileSync(f, policy('c'));
    await new Promise((r) => setTimeout(r, 150));
    assert.equal(store.current().policies[0]!.name, 'b', 'closed: no more reloads');
  });
});
