// docs/users.md runs as written: every ```sh example block, as the job user alice in a fresh
// directory, with IMAGE set to the sandbox's demo image (the page sets it to a site's).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { sandbox } from '../support/stack';
import { jobDir, run } from '../support/slurm';

const PAGE = path.join(import.meta.dirname, '../../docs/users.md');

function examples(text: string): string[] {
  return [...text.matchAll(/^```sh example\n([\s\S]*?)^```$/gm)].map((m) => m[1]!);
}

describe('docs/users.md', { timeout: 600_000 }, () => {
  const blocks = examples(readFileSync(PAGE, 'utf8'));
  it('has examples to run', () => {
    assert.ok(blocks.length >= 5, `${blocks.length} examples`);
  });
  blocks.forEach((block, i) => {
    it(`example ${i + 1} runs as written: ${block.split('\n')[0]}`, () => {
      const dir = jobDir('alice', `users-doc-${i + 1}`);
      const r = run('sh', ['-ec', block], { user: 'alice', cwd: dir, env: { PATH: '/usr/local/bin:/usr/bin:/bin', IMAGE: sandbox().demoImage, HOME: '/home/alice' }, timeoutMs: 240_000 });
      assert.equal(r.code, 0, `example ${i + 1} exited ${r.code}:\n${block}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
    });
  });
});
