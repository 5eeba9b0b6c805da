import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { mergeGroup, mergePasswd } from '../../services/agent/containers/passwd';

describe('passwd and group entries for the job user', () => {
  const user = { name: 'alice', uid: 2001, gid: 2001, gecos: 'Alice: A', home: '/home/alice', shell: '/bin/sh' };

  it('appends the user to the image passwd, replacing same name or uid', () => {
    const image = 'root:x:0:0:root:/root:/bin/sh\nalice:x:1000:1000::/home/a:/bin/sh\nbob:x:2001:2001::/b:/bin/sh\nnobody:x:65534:65534::/:/bin/false\n';
    const out = mergePasswd(image, user);
    assert.equal(out, 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534::/:/bin/false\nalice:x:2001:2001:Alice  A:/home/alice:/bin/sh\n');
  });

  it('works when the image has no passwd file', () => {
    assert.equal(mergePasswd(undefined, user), 'alice:x:2001:2001:Alice  A:/home/alice:/bin/sh\n');
  });

  it('adds every group of the user with the user as member', () => {
    const out = mergeGroup('root:x:0:\nusers:x:2100:\nstaff:x:50:\n', 'alice', [{ gid: 2001, name: 'alice' }, { gid: 2100, name: 'berth-demo' }]);
    assert.equal(out, 'root:x:0:\nstaff:x:50:\nalice:x:2001:alice\nberth-demo:x:2100:alice\n');
  });
});
