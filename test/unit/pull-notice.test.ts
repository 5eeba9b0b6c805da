// What the user of a job waiting on a long image pull reads (AdminComment), and when.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { pullNotice } from '../../services/agent/images/pull-notice';

const p = (currentBytes: number, totalBytes: number, layersDone = 0, layersTotal = 3) => ({ currentBytes, totalBytes, layersDone, layersTotal, status: 'Downloading', layers: [] });

describe('the notice of a long image pull', () => {
  it('says nothing in the first seconds, then at most one line every few seconds, and how long it took', () => {
    const said: string[] = [];
    let t = 0;
    const n = pullNotice((s) => said.push(s), { image: 'reg/app:1', node: 'n2' }, { afterMs: 2000, everyMs: 5000 }, () => t);
    t = 1000; n.progress(p(10e6, 300e6));
    assert.deepEqual(said, [], 'a quick pull says nothing');
    t = 2500; n.progress(p(120e6, 300e6, 1));
    t = 4000; n.progress(p(150e6, 300e6, 1));
    t = 7600; n.progress(p(300e6, 300e6, 3));
    t = 9000; n.done(true);
    assert.deepEqual(said, [
      'berth: pulling reg/app:1 on n2: 40 % (120 of 300 MB, 1 of 3 layers done)',
      'berth: pulling reg/app:1 on n2: 100 % (300 of 300 MB, 3 of 3 layers done)',
      'berth: pulled reg/app:1 on n2 in 9 s',
    ]);
  });

  it('tells nothing for a pull that ended quickly, nor a done line for one that failed', () => {
    const said: string[] = [];
    let t = 0;
    const quick = pullNotice((s) => said.push(s), { image: 'i', node: 'n1' }, { afterMs: 2000, everyMs: 5000 }, () => t);
    t = 500; quick.progress(p(1, 2)); quick.done(true);
    assert.equal(said.length, 0);
    const failed = pullNotice((s) => said.push(s), { image: 'i', node: 'n1' }, { afterMs: 0, everyMs: 5000 }, () => t);
    failed.progress(p(0, 0));
    failed.done(false);
    assert.deepEqual(said, ['berth: pulling i on n1: 0 % (size not known yet, 0 of 3 layers done)']);
  });
});
