import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseImageReference, pinned } from '../../services/shared/images/reference';
import { dockerFormOf, parseJobImageReference } from '../../services/shared/images/reference';
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

describe("a job's image as pyxis and enroot users write it", () => {
  const D = 'sha256:' + 'b'.repeat(64);
  it("takes enroot's REGISTRY#IMAGE and docker:// forms as Docker's", () => {
    assert.equal(dockerFormOf('nvcr.io#nvidia/pytorch:24.01-py3'), 'nvcr.io/nvidia/pytorch:24.01-py3');
    assert.equal(dockerFormOf('127.0.0.1:5000#berth/demo:1.0'), '127.0.0.1:5000/berth/demo:1.0');
    assert.equal(dockerFormOf('docker://127.0.0.1:5000#berth/demo:1.0'), '127.0.0.1:5000/berth/demo:1.0');
    assert.equal(dockerFormOf('docker://alice@registry.site:5000#team/app:1.4'), 'registry.site:5000/team/app:1.4');
    assert.equal(dockerFormOf('docker://alice@ubuntu:22.04'), 'ubuntu:22.04');
    assert.equal(dockerFormOf('dockerd://registry.site/team/app:1'), 'registry.site/team/app:1');
    assert.equal(dockerFormOf('podman://registry.site/team/app:1'), 'registry.site/team/app:1');
    assert.equal(dockerFormOf(`docker://registry.site/team/app@${D}`), `registry.site/team/app@${D}`);
    assert.equal(dockerFormOf(`registry.site#team/app@${D}`), `registry.site/team/app@${D}`);
    assert.equal(dockerFormOf('registry.site/team/app:1'), 'registry.site/team/app:1', 'Docker form unchanged');
    assert.equal(parseJobImageReference('nvcr.io#nvidia/pytorch:24.01-py3').domain, 'nvcr.io');
    assert.equal(parseJobImageReference('docker://127.0.0.1:5000#berth/demo:1.0').text, '127.0.0.1:5000/berth/demo:1.0');
  });
  it('refuses what is not an image, saying what to do', () => {
    assert.throws(() => dockerFormOf('/scratch/me/pytorch.sqsh'), /is a file: berth runs Docker images from a registry, not squashfs files; push the image/);
    assert.throws(() => dockerFormOf('./app.sqsh'), /is a file/);
    assert.throws(() => dockerFormOf('#team/app:1'), /nothing before '#'/);
    assert.throws(() => dockerFormOf('registry.site#'), /nothing after '#'/);
    assert.throws(() => parseJobImageReference('registry.site#Team/App'), /path component 'Team' must be lowercase/);
  });
});
