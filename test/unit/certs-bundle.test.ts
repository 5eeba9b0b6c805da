// The job's DOCKER_CERT_PATH files: owned by the job's user, readable by them and root alone.
// Runs as root (chown); the user is alice (uid 2001) where she exists, else uid 2001 anyway.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { removeJobClientBundle, writeJobClientBundle } from '../../services/agent/certs/job-bundle';

const USER = { uid: 2001, gid: 2001 };
const OTHER_UID = 2002;
const files = {
  caPem: '-----BEGIN CERTIFICATE-----\nCA\n-----END CERTIFICATE-----\n',
  certPem: '-----BEGIN CERTIFICATE-----\nLEAF\n-----END CERTIFICATE-----\n',
  keyPem: '-----BEGIN PRIVATE KEY-----\nKEY\n-----END PRIVATE KEY-----\n',
};

describe('job client bundle', { skip: process.geteuid?.() !== 0 ? 'needs root (chown to the job user)' : false }, () => {
  let parent: string;
  let seq = 0;
  const newDir = () => path.join(parent, `job-${++seq}`);
  before(() => {
    parent = mkdtempSync(path.join(os.tmpdir(), 'berth-bundle-unit-'));
    chmodSync(parent, 0o755); // root's, traversable: like /run/berth/<node>
  });
  after(() => rmSync(parent, { recursive: true, force: true }));

  const mode = (p: string) => lstatSync(p).mode & 0o7777;

  it('writes ca.pem, cert.pem and key.pem owned by the user: key 0400, certificates 0444, directory 0500', () => {
    const dir = newDir();
    writeJobClientBundle(dir, files, USER);
    assert.deepEqual(readdirSync(dir).sort(), ['ca.pem', 'cert.pem', 'key.pem']);
    for (const name of ['', 'ca.pem', 'cert.pem', 'key.pem']) {
      const st = lstatSync(path.join(dir, name));
      assert.equal(st.uid, USER.uid, `${name || 'dir'} uid`);
      assert.equal(st.gid, USER.gid, `${name || 'dir'} gid`);
    }
    assert.equal(mode(dir), 0o500);
    assert.equal(mode(path.join(dir, 'key.pem')), 0o400);
    assert.equal(mode(path.join(dir, 'ca.pem')), 0o444);
    assert.equal(mode(path.join(dir, 'cert.pem')), 0o444);
    assert.equal(readFileSync(path.join(dir, 'key.pem'), 'utf8'), files.keyPem);
    assert.equal(readFileSync(path.join(dir, 'cert.pem'), 'utf8'), files.certPem);
    assert.equal(readFileSync(path.join(dir, 'ca.pem'), 'utf8'), files.caPem);
    assert.deepEqual(readdirSync(parent).filter((n) => n.includes('.tmp-')), [], 'no temporary directory left');
  });

  it('lets the user read the key and no other user', () => {
    const dir = newDir();
    writeJobClientBundle(dir, files, USER);
    const key = path.join(dir, 'key.pem');
    const asUser = spawnSync('cat', [key], { uid: USER.uid, gid: USER.gid, encoding: 'utf8' });
    assert.equal(asUser.status, 0, asUser.stderr);
    assert.equal(asUser.stdout, files.keyPem);
    const asOther = spawnSync('cat', [key], { uid: OTHER_UID, gid: OTHER_UID, encoding: 'utf8' });
    assert.notEqual(asOther.status, 0);
    assert.match(asOther.stderr, /Permission denied/);
  });

  it('is idempotent and replaces what an earlier run wrote', () => {
    const dir = newDir();
    writeJobClientBundle(dir, files, USER);
    writeJobClientBundle(dir, files, USER);
    assert.equal(readFileSync(path.join(dir, 'cert.pem'), 'utf8'), files.certPem);
    const renewed = { ...files, certPem: files.certPem.replace('LEAF', 'LEAF2') };
    writeJobClientBundle(dir, renewed, USER);
    assert.equal(readFileSync(path.join(dir, 'cert.pem'), 'utf8'), renewed.certPem);
    assert.equal(mode(dir), 0o500);
    assert.equal(statSync(dir).uid, USER.uid);
  });

  it('takes over an empty directory root made, or the user\'s own', () => {
    const dir = newDir();
    mkdirSync(dir, { mode: 0o755 });
    writeJobClientBundle(dir, files, USER);
    assert.equal(statSync(dir).uid, USER.uid);
    assert.equal(mode(dir), 0o500);
  });

  it('refuses a symlinked directory and leaves its target alone', () => {
    const target = mkdtempSync(path.join(os.tmpdir(), 'berth-bundle-target-'));
    try {
      const dir = newDir();
      symlinkSync(target, dir);
      assert.throws(() => writeJobClientBundle(dir, files, USER), /cannot write the Docker client bundle .*: it is a symlink; remove it/);
      assert.deepEqual(readdirSync(target), []);
      assert.equal(statSync(target).uid, 0);
      removeJobClientBundle(dir);
      assert.equal(existsSync(dir), false, 'the link is gone');
      assert.equal(existsSync(target), true, 'its target is not');
    } finally {
      rmSync(target, { recursive: true, force: true });
    }
  });

  it("refuses a directory of another user, a file, and a parent others could change", () => {
    const theirs = newDir();
    mkdirSync(theirs);
    chownSync(theirs, OTHER_UID, OTHER_UID);
    assert.throws(() => writeJobClientBundle(theirs, files, USER), /belongs to uid 2002, neither root nor the job's user \(2001\)/);
    assert.deepEqual(readdirSync(theirs), []);

    const file = newDir();
    writeFileSync(file, 'x');
    assert.throws(() => writeJobClientBundle(file, files, USER), /exists and is not a directory/);

    const userParent = newDir();
    mkdirSync(userParent);
    chownSync(userParent, USER.uid, USER.gid);
    assert.throws(() => writeJobClientBundle(path.join(userParent, 'docker'), files, USER), /belongs to uid 2001, who could swap paths under berthd/);

    const openParent = newDir();
    mkdirSync(openParent);
    chmodSync(openParent, 0o777);
    assert.throws(() => writeJobClientBundle(path.join(openParent, 'docker'), files, USER), /mode 777\) lets others rename entries/);

    assert.throws(() => writeJobClientBundle(path.join(newDir(), 'docker'), files, USER), /parent .* is not a directory/);
    assert.throws(() => writeJobClientBundle(newDir(), { ...files, keyPem: 'x' }, USER), /the key is not PEM text/);
  });

  it('accepts a sticky, world-writable parent such as /tmp', () => {
    const sticky = newDir();
    mkdirSync(sticky);
    chmodSync(sticky, 0o1777);
    const dir = path.join(sticky, 'docker');
    writeJobClientBundle(dir, files, USER);
    assert.equal(mode(path.join(dir, 'key.pem')), 0o400);
  });

  it('removes the bundle and leftovers of an interrupted write; a missing bundle is fine', () => {
    const dir = newDir();
    writeJobClientBundle(dir, files, USER);
    mkdirSync(`${dir}.tmp-AbC123`);
    writeFileSync(path.join(`${dir}.tmp-AbC123`, 'key.pem'), 'x');
    const unrelated = `${dir}.tmp-keep-me`;
    mkdirSync(unrelated);
    removeJobClientBundle(dir);
    assert.equal(existsSync(dir), false);
    assert.equal(existsSync(`${dir}.tmp-AbC123`), false);
    assert.equal(existsSync(unrelated), true);
    removeJobClientBundle(dir);
    removeJobClientBundle(path.join(newDir(), 'never-made'));
  });
});
