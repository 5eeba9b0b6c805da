// Which of the client's environment reaches a step: Slurm's, the process managers' (PMI,
// PMIx, Open MPI/PRRTE, MPICH/Hydra, Intel MPI, UCX), the terminal and time zone, and the GPU
// numbering Slurm gives the tasks. PATH, LD_* and the like stay the image's; so does the
// locale (LANG, LANGUAGE, LC_*), unless named with --container-env, as with pyxis: an image
// without the host's locale would warn at every perl or python start.
const FORWARDED = /^(SLURM_|SLURMD_|SRUN_|PMI_|PMIX_|OMPI_|PRTE_|PMIX|HYDRA_|I_MPI_|MPI_|MPICH_|UCX_|FI_|NCCL_|OMP_|TERM$|TZ$|CUDA_VISIBLE_DEVICES$|ROCR_VISIBLE_DEVICES$|GPU_DEVICE_ORDINAL$|ZE_AFFINITY_MASK$)/;
const NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** `extra`: names the job asked for with --container-env, forwarded whatever they are */
export function forwardedEnv(env: readonly string[], extra: readonly string[] = []): string[] {
  const out: string[] = [];
  for (const kv of env) {
    const eq = kv.indexOf('=');
    if (eq <= 0) continue;
    const name = kv.slice(0, eq);
    if (NAME.test(name) && (FORWARDED.test(name) || extra.includes(name))) out.push(kv);
  }
  return out;
}

export function stepEnv(clientEnv: readonly string[], user: { name: string; home: string }, extra: readonly string[] = []): string[] {
  const base = [`USER=${user.name}`, `LOGNAME=${user.name}`, `HOME=${user.home}`].filter((kv) => !extra.includes(kv.slice(0, kv.indexOf('='))));
  return [...forwardedEnv(clientEnv, extra), ...base];
}
