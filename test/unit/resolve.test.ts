import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { runResolve } from '../../services/cli/resolve';

async function resolve(ref: string): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await runResolve(ref, (s) => (out += s), (s) => (err += s));
  return { code, out, err };
}

describe('berth resolve', () => {
  it('prints a digest reference as repository@digest without asking any registry', async () => {
    const d = 'sha256:' + 'f'.repeat(64);
    assert.deepEqual(await resolve(`127.0.0.1:1/team/app:1.0@${d}`), { code: 0, out: `127.0.0.1:1/team/app@${d}\n`, err: '' });
  });

  it('refuses a malformed reference with the reason and exit 1', async () => {
    const r = await resolve('Team/App');
    assert.equal(r.code, 1);
    assert.equal(r.out, '');
    assert.match(r.err, /^berth: image reference 'Team\/App' is malformed: path component 'Team' must be lowercase/);
  });
});
