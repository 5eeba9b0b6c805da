// Scripts written for pyxis, through the real Slurm: enroot's image forms, PYXIS_CONTAINER_*
// variables, pyxis's options berth takes or refuses, and the malformed values pyxis refuses.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { pushBusyboxImage } from '../support/images';
import { jobDir, run } from '../support/slurm';

const PATH = '/usr/local/bin:/usr/bin:/bin';
const TAG = '127.0.0.1:5000/berth/pyxis-compat:1';

describe('scripts written for pyxis', { timeout: 240_000 }, () => {
  pushBusyboxImage(TAG, { 'etc/marker': 'pyxis-compat\n' });
  const dir = jobDir('alice', 'pyxis-compat');
  const srun = (args: string[], env: Record<string, string> = {}) => run('srun', ['-N1', '-w', 'n2', ...args], { user: 'alice', cwd: dir, env: { PATH, ...env } });

  it("runs enroot's image forms, and PYXIS_CONTAINER_* variables, as berth's", () => {
    for (const image of ['127.0.0.1:5000#berth/pyxis-compat:1', 'docker://127.0.0.1:5000#berth/pyxis-compat:1', 'dockerd://127.0.0.1:5000/berth/pyxis-compat:1']) {
      const r = srun([`--container-image=${image}`, 'cat', '/etc/marker']);
      assert.equal(r.code, 0, `${image}: ${r.stderr}`);
      assert.equal(r.stdout.trim(), 'pyxis-compat', image);
    }
    const env = srun(['cat', '/etc/marker'], { PYXIS_CONTAINER_IMAGE: TAG });
    assert.equal(env.code, 0, env.stderr);
    assert.equal(env.stdout.trim(), 'pyxis-compat');
    const ro = srun(['touch', '/newfile'], { PYXIS_CONTAINER_IMAGE: TAG, PYXIS_CONTAINER_WRITABLE: '0' });
    assert.notEqual(ro.code, 0, 'PYXIS_CONTAINER_WRITABLE=0 is a read-only root');
    assert.match(ro.stderr, /Read-only file system/);
    const wins = srun([`--container-image=${TAG}`, 'pwd'], { PYXIS_CONTAINER_WORKDIR: '/usr', BERTH_CONTAINER_WORKDIR: '/etc' });
    assert.equal(wins.stdout.trim(), '/etc', 'a BERTH_ variable wins over its PYXIS_ alias');
  });

  it("takes pyxis's no- options, and refuses what berth cannot do with why and what to do", () => {
    const ok = srun(['--no-container-remap-root', '--no-container-entrypoint', `--container-image=${TAG}`, 'id', '-u']);
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal(ok.stdout.trim(), run('id', ['-u', 'alice']).stdout.trim());
    const root = srun(['--container-remap-root', `--container-image=${TAG}`, 'id', '-u']);
    assert.notEqual(root.code, 0);
    assert.match(root.stderr, /--container-remap-root \(PYXIS_CONTAINER_REMAP_ROOT=1\): berth runs your containers as you/);
    assert.match(root.stderr, /docker build/);
    const envRoot = srun(['true'], { PYXIS_CONTAINER_IMAGE: TAG, PYXIS_CONTAINER_REMAP_ROOT: '1' });
    assert.notEqual(envRoot.code, 0);
    assert.match(envRoot.stderr, /--container-remap-root \(PYXIS_CONTAINER_REMAP_ROOT=1\)/);
    const ep = srun(['--container-entrypoint', `--container-image=${TAG}`, 'true']);
    assert.notEqual(ep.code, 0);
    assert.match(ep.stderr, /berth does not run the image's ENTRYPOINT/);
  });

  it("keeps the host's locale out of the container unless the step names it", () => {
    const out = srun([`--container-image=${TAG}`, 'sh', '-c', 'echo "lang=$LANG lc=$LC_ALL"'], { LANG: 'de_DE.UTF-8', LC_ALL: 'de_DE.UTF-8' });
    assert.equal(out.code, 0, out.stderr);
    assert.equal(out.stdout.trim(), 'lang= lc=');
    const named = srun([`--container-image=${TAG}`, '--container-env=LANG', 'sh', '-c', 'echo "lang=$LANG lc=$LC_ALL"'], { LANG: 'de_DE.UTF-8', LC_ALL: 'de_DE.UTF-8' });
    assert.equal(named.stdout.trim(), 'lang=de_DE.UTF-8 lc=');
  });

  it('refuses the malformed values pyxis refuses, at submit', () => {
    const m = srun([`--container-image=${TAG}`, '--container-mounts=/tmp:', 'true']);
    assert.notEqual(m.code, 0);
    assert.match(m.stderr, /--container-mounts entry '\/tmp:' has nothing after ':'/);
    const e = srun([`--container-image=${TAG}`, '--container-env=FOO,', 'true']);
    assert.notEqual(e.code, 0);
    assert.match(e.stderr, /--container-env 'FOO,' has an empty name/);
    const sq = srun(['--container-image=./image.sqsh', 'true']);
    assert.notEqual(sq.code, 0);
    assert.match(sq.stderr, /is a file: berth runs Docker images from a registry, not squashfs files/);
  });

  it("fails as pyxis's own tests expect: a --container-workdir the image lacks, a mount source that does not exist", () => {
    // dockerd would make /pyxis itself, as root, when it creates the container (pyxis's workdir.bats)
    const w = srun(['--container-workdir=/pyxis', `--container-image=${TAG}`, 'true']);
    assert.notEqual(w.code, 0, 'a missing --container-workdir fails the step');
    assert.match(w.stderr, /\/pyxis: No such file or directory/);
    // pyxis's mounts.bats greps these words and the path
    const m = srun(['--container-mounts=/nonexistent/path/foo:/mnt', `--container-image=${TAG}`, 'true']);
    assert.notEqual(m.code, 0);
    assert.match(m.stderr, /source path does not exist: \/nonexistent\/path\/foo/);
  });
});
