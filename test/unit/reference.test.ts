import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseImageReference, pinned } from '../../services/shared/images/reference';
import { BerthError } from '../../services/shared/errors';

describe('image references', () => {
  const valid: [string, Partial<ReturnType<typeof parseImageReference>>][] = [
    ['127.0.0.1:5000/berth/demo:1.0', { domain: '127.0.0.1:5000', path: 'berth/demo', tag: '1.0', repository: '127.0.0.1:5000/berth/demo' }],
    ['localhost/app', { domain: 'localhost', path: 'app', tag: undefined }],
    ['busybox', { domain: '', path: 'busybox', repository: 'busybox' }],
    ['registry.site.org/a/b/c_d__e-f:v1.2-rc_3', { domain: 'registry.site.org', path: 'a/b/c_d__e-f', tag: 'v1.2-rc_3' }],
    [`reg:5000/x@sha256:${'b'.repeat(64)}`, { domain: 'reg:5000', digest: `sha256:${'b'.repeat(64)}`, tag: undefined }],
    [`reg:5000/x:t@sha256:${'c'.repeat(64)}`, { tag: 't', digest: `sha256:${'c'.repeat(64)}` }],
  ];
  for (const [text, expected] of valid) {
    it(`accepts ${text}`, () => {
      const r = parseImageReference(text);
      for (const [k, v] of Object.entries(expected)) assert.equal(r[k as keyof typeof r], v, k);
      assert.equal(r.text, text);
    });
  }

  const invalid: [string, RegExp][] = [
    ['', /empty/],
    ['Ubuntu:22.04', /lowercase/],
    ['reg:5000/x:-bad', /tag '-bad'/],
    ['reg:5000/x@sha256:abc', /not a sha256 digest/],
    ['reg:5000//x', /empty path component/],
    ['reg:5000/x y', /white space/],
    ['reg_bad:5000/x', /registry 'reg_bad:5000' is not a valid host/],
    ['a/b:c:d', /tag|lowercase|registry/],
  ];
  for (const [text, why] of invalid) {
    it(`refuses '${text}' saying why`, () => {
      assert.throws(() => parseImageReference(text), (e: unknown) => {
        assert.ok(e instanceof BerthError);
        assert.equal(e.code, 'INVALID_IMAGE_REFERENCE');
        assert.match(e.message, why);
        assert.match(e.message, /REGISTRY\/NAME:TAG/);
        return true;
      });
    });
  }

  it('pins a tagged reference to repository@digest', () => {
    assert.equal(pinned(parseImageReference('reg:5000/x:1'), 'sha256:' + 'd'.repeat(64)), `reg:5000/x@sha256:${'d'.repeat(64)}`);
  });
});
