// A job user's Docker client files, in the layout DOCKER_CERT_PATH expects (ca.pem,
// cert.pem, key.pem), readable by that user and root alone: the directory is theirs, 0500,
// the key 0400, the certificates 0444.
//
// berthd runs as root and the user is not, so no path the user can change is ever followed:
// the parent must be root's (or, if others may write in it, sticky), the files are made with
// O_EXCL in a fresh directory beside the bundle and changed through their descriptors, and
// that directory is renamed into place whole, so a reader never sees half a bundle.
import { closeSync, fchmodSync, fchownSync, lchownSync, lstatSync, mkdtempSync, openSync, readdirSync, renameSync, rmSync, chmodSync, writeSync, type Stats } from 'node:fs';
import path from 'node:path';

export const BUNDLE_CA_FILE = 'ca.pem';
export const BUNDLE_CERT_FILE = 'cert.pem';
export const BUNDLE_KEY_FILE = 'key.pem';

export interface JobClientFiles {
  caPem: string;
  certPem: string;
  keyPem: string;
}

export interface BundleOwner {
  uid: number;
  gid: number;
}

const TMP_INFIX = '.tmp-';

function lstatOrUndefined(p: string): Stats | undefined {
  try {
    return lstatSync(p);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

function isRootOrSelf(uid: number): boolean {
  return uid === 0 || uid === process.geteuid?.();
}

/**
 * Writes (or rewrites: it is idempotent) the bundle for `owner` in `dir`. Refuses when `dir`
 * is a symlink or not a directory, belongs to someone other than root or the owner, or its
 * parent could let another user swap paths under berthd.
 */
export function writeJobClientBundle(dir: string, files: JobClientFiles, owner: BundleOwner): void {
  const refuse = (why: string): never => {
    throw new Error(`cannot write the Docker client bundle ${dir}: ${why}`);
  };
  if (!Number.isInteger(owner.uid) || owner.uid < 0 || !Number.isInteger(owner.gid) || owner.gid < 0) {
    refuse(`owner ${owner.uid}:${owner.gid} is not a numeric uid:gid`);
  }
  for (const [name, text] of [['CA certificate', files.caPem], ['certificate', files.certPem], ['key', files.keyPem]] as const) {
    if (!text.includes('-----BEGIN ')) refuse(`the ${name} is not PEM text`);
  }

  const parent = path.dirname(path.resolve(dir));
  const p = lstatOrUndefined(parent);
  if (!p || !p.isDirectory()) refuse(`its parent ${parent} is not a directory; berthd makes bundles only inside a directory it already has`);
  if (!isRootOrSelf(p!.uid)) refuse(`its parent ${parent} belongs to uid ${p!.uid}, who could swap paths under berthd; keep job bundles in a directory of root's`);
  if ((p!.mode & 0o022) !== 0 && (p!.mode & 0o1000) === 0) {
    refuse(`its parent ${parent} (mode ${(p!.mode & 0o7777).toString(8)}) lets others rename entries; make it writable by root alone, or sticky`);
  }

  const existing = lstatOrUndefined(dir);
  if (existing) {
    if (existing.isSymbolicLink()) refuse('it is a symlink; remove it, berthd makes the directory itself');
    if (!existing.isDirectory()) refuse('it exists and is not a directory; remove it');
    if (!isRootOrSelf(existing.uid) && existing.uid !== owner.uid) {
      refuse(`it belongs to uid ${existing.uid}, neither root nor the job's user (${owner.uid}); remove it`);
    }
  }

  const tmp = mkdtempSync(path.resolve(dir) + TMP_INFIX); // 0700, ours
  try {
    const put = (name: string, text: string, mode: number): void => {
      const fd = openSync(path.join(tmp, name), 'wx', 0o600);
      try {
        writeSync(fd, text);
        fchownSync(fd, owner.uid, owner.gid);
        fchmodSync(fd, mode);
      } finally {
        closeSync(fd);
      }
    };
    put(BUNDLE_CA_FILE, files.caPem, 0o444);
    put(BUNDLE_CERT_FILE, files.certPem, 0o444);
    put(BUNDLE_KEY_FILE, files.keyPem, 0o400);
    chmodSync(tmp, 0o500);
    if (existing) rmSync(dir, { recursive: true, force: true });
    // fails (ENOTEMPTY, ENOTDIR, EEXIST) rather than follow anything that appeared at `dir` meanwhile
    renameSync(tmp, dir);
  } catch (err) {
    rmSync(tmp, { recursive: true, force: true });
    throw err;
  }
  // only now the user's: until the rename the directory was root's, in a parent no user can change
  lchownSync(dir, owner.uid, owner.gid);
}

/** Removes the bundle and any half-made one a crash left beside it; a missing bundle is fine. */
export function removeJobClientBundle(dir: string): void {
  const abs = path.resolve(dir);
  // rm does not follow symlinks: a link at `dir` goes, whatever it points to stays
  rmSync(abs, { recursive: true, force: true });
  const parent = path.dirname(abs);
  const prefix = path.basename(abs) + TMP_INFIX;
  let names: string[];
  try {
    names = readdirSync(parent);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  for (const name of names) {
    if (name.startsWith(prefix) && /^[A-Za-z0-9]{6}$/.test(name.slice(prefix.length))) rmSync(path.join(parent, name), { recursive: true, force: true });
  }
}
