// What `berth pull` shows: per-layer lines on a terminal, quiet lines elsewhere.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { LayerProgress__Output } from '../../services/shared/gen/berth/v1/LayerProgress';
import type { PullProgress__Output } from '../../services/shared/gen/berth/v1/PullProgress';
import { layerSummary, layerText, PullView } from '../../services/cli/pull-view';

const layer = (id: string, state: string, currentBytes = 0, totalBytes = 0): LayerProgress__Output =>
  ({ id, state: `LAYER_STATE_${state}` as LayerProgress__Output['state'], currentBytes, totalBytes });

function progress(layers: LayerProgress__Output[], currentBytes: number, totalBytes: number): PullProgress__Output {
  return { currentBytes, totalBytes, layersDone: layers.filter((l) => l.state === 'LAYER_STATE_DONE').length, layersTotal: layers.length, status: 'Downloading', layers };
}

const MIXED = [
  layer('aaaaaaaaaaaa', 'DONE'),
  layer('bbbbbbbbbbbb', 'EXTRACTING', 64e6, 120e6),
  layer('cccccccccccc', 'DOWNLOADED', 30e6, 30e6),
  layer('dddddddddddd', 'DOWNLOADING', 12e6, 30e6),
  layer('eeeeeeeeeeee', 'WAITING'),
];

describe('berth pull on a terminal', () => {
  it('says each layer\'s state in words', () => {
    assert.deepEqual(MIXED.map(layerText), ['done', 'extracting 53 %', 'downloaded, waiting to extract', 'downloading 40 % (12.0 of 30.0 MB)', 'waiting']);
  });

  it('draws a bar per node and, under a node still pulling, a line per layer', () => {
    const v = new PullView(['n1', 'n10']);
    v.progress('n10', progress(MIXED, 150e6, 300e6));
    assert.deepEqual(v.frame(), [
      'n1   waiting',
      'n10  [############------------] 1/5 layers 150.0/300.0 MB',
      '       aaaaaaaaaaaa  done',
      '       bbbbbbbbbbbb  extracting 53 %',
      '       cccccccccccc  downloaded, waiting to extract',
      '       dddddddddddd  downloading 40 % (12.0 of 30.0 MB)',
      '       eeeeeeeeeeee  waiting',
    ]);
    v.finish('n10', 'pulled in 9.0 s: reg/app@sha256:1');
    assert.deepEqual(v.frame(), ['n1   waiting', 'n10  pulled in 9.0 s: reg/app@sha256:1'], 'a node done is one line again');
  });

  it('counts the layers by state on one line per node when the layers would not fit the terminal', () => {
    const v = new PullView(['n1', 'n2']);
    v.progress('n1', progress(MIXED, 150e6, 300e6));
    v.progress('n2', progress(MIXED, 150e6, 300e6));
    assert.deepEqual(v.frame(6), [
      'n1  [############------------] 1/5 layers 150.0/300.0 MB  1 done, 1 extracting 53 %, 1 downloaded, 1 downloading 40 %, 1 waiting',
      'n2  [############------------] 1/5 layers 150.0/300.0 MB  1 done, 1 extracting 53 %, 1 downloaded, 1 downloading 40 %, 1 waiting',
    ]);
    assert.equal(layerSummary([layer('a', 'DOWNLOADING', 1, 4), layer('b', 'DOWNLOADING', 3, 4)]), '2 downloading 25 % 75 %');
  });
});

describe('berth pull into a log', () => {
  it('writes a node\'s progress once per interval of its pull (nothing for a quicker one), and each outcome', () => {
    let t = 0;
    const v = new PullView(['n1', 'n2'], { everyMs: 30_000, now: () => t });
    const written: string[] = [];
    const feed = (n: string, p: PullProgress__Output): void => { const l = v.progress(n, p); if (l) written.push(l); };
    feed('n1', progress([layer('a', 'WAITING')], 0, 0));
    for (t = 0; t <= 60_000; t += 100) feed('n1', progress([layer('a', 'DOWNLOADING', t * 1000, 60e6)], t * 1000, 60e6)); // ten a second for a minute
    written.push(v.finish('n1', 'pulled in 60.0 s: reg/app@sha256:1'));
    written.push(v.finish('n2', 'already present: reg/app@sha256:1'));
    assert.deepEqual(written, [
      'n1  pulling: 50 % (30.0 of 60.0 MB, 0 of 1 layers done)',
      'n1  pulling: 100 % (60.0 of 60.0 MB, 0 of 1 layers done)',
      'n1  pulled in 60.0 s: reg/app@sha256:1',
      'n2  already present: reg/app@sha256:1',
    ]);
  });
});
