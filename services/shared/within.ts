// A promise's value if it settles successfully within ms, else undefined (its rejection too):
// for answers that help but must not hold a caller up, such as Slurm's while slurmctld is away.
export function within<T>(p: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<undefined>((resolve) => {
    timer = setTimeout(() => resolve(undefined), ms);
  });
  return Promise.race([p.catch(() => undefined), late]).finally(() => clearTimeout(timer));
}
