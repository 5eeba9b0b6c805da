// passwd and group entries for the job's user inside the container, so that the user's name
// and groups resolve there: the image's files with the user's entries added (any entry of the
// image with the same name or id is replaced).
export interface PasswdEntry {
  name: string;
  uid: number;
  gid: number;
  gecos: string;
  home: string;
  shell: string;
}

export interface GroupEntry {
  name: string;
  gid: number;
}

function lines(text: string | undefined): string[] {
  return (text ?? '').split('\n').filter((l) => l.trim() !== '');
}

export function mergePasswd(image: string | undefined, user: PasswdEntry): string {
  const kept = lines(image).filter((l) => {
    const [name, , uid] = l.split(':');
    return name !== user.name && Number(uid) !== user.uid;
  });
  kept.push([user.name, 'x', user.uid, user.gid, user.gecos.replace(/[:\n]/g, ' '), user.home, user.shell].join(':'));
  return kept.join('\n') + '\n';
}

export function mergeGroup(image: string | undefined, userName: string, groups: readonly GroupEntry[]): string {
  const ours = new Map(groups.map((g) => [g.gid, g]));
  const names = new Set(groups.map((g) => g.name));
  const kept = lines(image).filter((l) => {
    const [name, , gid] = l.split(':');
    return !ours.has(Number(gid)) && !names.has(name ?? '');
  });
  for (const g of groups) kept.push(`${g.name}:x:${g.gid}:${userName}`);
  return kept.join('\n') + '\n';
}
