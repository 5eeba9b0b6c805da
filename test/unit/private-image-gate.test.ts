import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MemoryImageAccess } from '../../services/agent/images/image-access';
import { DockerRequest } from '../../services/agent/docker-request/request';
import { privateImageRefusal } from '../../services/agent/images/private-image-gate';

const createBodyImage = (body: string | undefined) => new DockerRequest({ method: 'POST', uri: '/v1.41/containers/create', body }, { action: 'container_create', readonly: false }).createImage;

const PRIVATE = 'reg:5002/team/secret@sha256:' + 'c'.repeat(64);

describe('private images on the Docker API', () => {
  it('reads Image from a create body as dockerd does: any key case, the last duplicate', () => {
    assert.equal(createBodyImage('{"Image":"a:1"}'), 'a:1');
    assert.equal(createBodyImage('{"iMaGe":"b:1"}'), 'b:1');
    assert.equal(createBodyImage('{"Image":"a:1","image":"c:1"}'), 'c:1');
    assert.equal(createBodyImage('not json'), undefined);
    assert.equal(createBodyImage(undefined), undefined);
  });

  it('refuses an image whatever it is called if it carries a name private to other users', async () => {
    const access = new MemoryImageAccess();
    access.grant(PRIVATE, 2001);
    const names = async (ref: string) => (['sha256:abc', 'reg:5002/team/secret:1', PRIVATE].includes(ref) ? [PRIVATE] : []);
    for (const ref of ['sha256:abc', 'reg:5002/team/secret:1', PRIVATE]) {
      assert.match((await privateImageRefusal(ref, 2002, access, names))!, /another user pulled it with their own registry login; run it in a berth job/);
      assert.equal(await privateImageRefusal(ref, 2001, access, names), undefined);
    }
    assert.equal(await privateImageRefusal('reg:5000/open:1', 2002, access, names), undefined);
  });
});
