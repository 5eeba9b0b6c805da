// The SPANK plugin's options are listed once (services/shared/spank-options.ts): the plugin's C
// table is generated from that list, and the TypeScript that reads the options' variables
// reads the same names.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { HEADER_PATH, renderOptionsHeader } from '../../scripts/gen-spank-options';
import { stepPrologueRequest } from '../../services/cli/hook';
import { OPTION_ENV } from '../../services/shared/container-options';
import { BATCH_ENV, PYXIS_ENV, SAVE_ENV, SPANK_OPTION_VARS, SPANK_OPTIONS, STEP_PROLOG_VARS } from '../../services/shared/spank-options';

const NATIVE = path.dirname(HEADER_PATH);

describe("the SPANK plugin's options", () => {
  it('berth_options.h is what the list in spank-options.ts makes (run npm run gen after changing it)', () => {
    assert.equal(readFileSync(HEADER_PATH, 'utf8'), renderOptionsHeader());
  });

  it("the plugin's C files name no option or option variable of their own, only the generated header does", () => {
    const sources = readdirSync(NATIVE).filter((f) => /^berth_.*\.[ch]$/.test(f) && f !== path.basename(HEADER_PATH));
    assert.ok(sources.includes('berth_spank.c') && sources.includes('berth_spank_tasks.c'));
    for (const f of sources) {
      // an option as a whole literal, or a variable anywhere in one ("SLURM_SPANK_BERTH_CONTAINER_BATCH");
      // messages may still name an option (--container-workdir ... does not exist)
      const text = readFileSync(path.join(NATIVE, f), 'utf8');
      const literals = [...text.matchAll(/"(?:no-)?container-[a-z-]+"|"[^"\n]*BERTH_CONTAINER_[^"\n]*"/g)].map((m) => m[0]);
      assert.deepEqual(literals, [], `${f} lists options or variables; take them from berth_options.h`);
    }
  });

  it('set exactly the variables berth submit-check reads', () => {
    assert.deepEqual([...SPANK_OPTION_VARS].sort(), [...Object.values(OPTION_ENV), BATCH_ENV, SAVE_ENV, ...Object.values(PYXIS_ENV)].sort());
    for (const o of SPANK_OPTIONS) assert.match(o.name, /^(no-)?container-/);
  });

  it('reach the step prolog hook: what the plugin hands it is all the hook reads of them', () => {
    const all = {
      BERTH_CONTAINER_IMAGE: 'reg.example/img@sha256:' + 'a'.repeat(64), BERTH_CONTAINER_IMAGE_REQUESTED: 'img:1',
      BERTH_CONTAINER_MOUNTS: '/scratch:/data:ro', BERTH_CONTAINER_WORKDIR: '/data', BERTH_CONTAINER_ENV: 'OMP_NUM_THREADS',
      BERTH_CONTAINER_NAME: 'box', BERTH_CONTAINER_MOUNT_HOME: '1', BERTH_CONTAINER_READONLY: '1', BERTH_CONTAINER_BATCH: '1',
    };
    const passed = Object.fromEntries(Object.entries(all).filter(([k]) => STEP_PROLOG_VARS.includes(k)));
    const full = stepPrologueRequest(all);
    assert.notDeepEqual(full, stepPrologueRequest({}), 'the values are read at all');
    assert.deepEqual(stepPrologueRequest(passed), full);
    assert.ok(!STEP_PROLOG_VARS.includes(BATCH_ENV), "--container-batch is the job's, not a step's");
    assert.ok(!STEP_PROLOG_VARS.includes(SAVE_ENV), "--container-save is the job's, not a step's");
  });

  it('the generator refuses a table the plugin cannot read', () => {
    const image = SPANK_OPTIONS[0]!;
    assert.throws(() => renderOptionsHeader([image, { name: 'container-image-flag', env: image.env, sets: '1', help: 'x' }]), /set by one option with a value/);
    assert.throws(() => renderOptionsHeader([{ ...image, sets: '1' }]), /either an argument or a value/);
    assert.throws(() => renderOptionsHeader([image, image]), /given twice/);
    assert.throws(() => renderOptionsHeader([{ ...image, help: 'quote "\u00e9"' }]), /outside printable ASCII/);
    assert.match(renderOptionsHeader([{ ...image, help: 'a "b" \\ c' }]), /"\[berth\] a \\"b\\" \\\\ c \(env BERTH_CONTAINER_IMAGE\)"/);
  });
});
