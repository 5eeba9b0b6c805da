#!/usr/bin/env bash
# Builds the native parts of berth into build/native/:
#   berth_spank.so  the SPANK plugin: the --container-* options of sbatch/salloc/srun and the
#                   native launch of container steps' tasks
#   berth-init      a static helper bind-mounted into job containers (if its source exists)
#   berth-runc      the OCI runtime dockerd runs containers with: asks berthd, pins binds, then runc
#   berth-hook      the step hooks the plugin runs per container step and node, without Node.js
#   berth-exec      `berth exec` (srun runs it per task) without Node.js: ExecStep with libmunge
set -euo pipefail

die() { echo "build-native: $*" >&2; exit 1; }

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SRC="$REPO/scripts/native"
OUT="$REPO/build/native"

command -v gcc >/dev/null || die "gcc not found; run scripts/install-deps.sh (installs gcc libc6-dev)"
[ -f /usr/include/slurm/spank.h ] || die "/usr/include/slurm/spank.h not found; run scripts/install-deps.sh (installs libslurm-dev)"

mkdir -p "$OUT"

# the plugin: entry points (berth_spank.c) over the task code (berth_spank_tasks.c), the berth
# runner (berth_run.c) and the confinement copy (berth_confine.c); berth_options.h is generated
# from services/shared/spank-options.ts (npm run gen) and checked in, so gcc alone builds it
CFLAGS_NATIVE=(-O2 -Wall -Wextra -Werror)
gcc -shared -fPIC "${CFLAGS_NATIVE[@]}" -I/usr/include/slurm \
  -o "$OUT/berth_spank.so.tmp" "$SRC/berth_spank.c" "$SRC/berth_spank_tasks.c" "$SRC/berth_run.c" "$SRC/berth_confine.c" \
  || die "compiling the plugin ($SRC/berth_spank.c, berth_spank_tasks.c, berth_run.c, berth_confine.c) failed (see above)"
mv -f "$OUT/berth_spank.so.tmp" "$OUT/berth_spank.so"
echo "build-native: $OUT/berth_spank.so"

gcc "${CFLAGS_NATIVE[@]}" -o "$OUT/berth-runc.tmp" "$SRC/berth-runc.c" \
  || die "compiling $SRC/berth-runc.c failed (see above)"
mv -f "$OUT/berth-runc.tmp" "$OUT/berth-runc"
echo "build-native: $OUT/berth-runc"

# berth-hook (berth-hook.c names its files, berth_hook.h what they share): a gRPC client of
# berthd's admin socket (and, for submit-check, the user socket with a munge credential) over
# libnghttp2; the protobuf of its requests is written by hand
# (berth_pb.c), the drain causes come from berth_faults.h (npm run gen). libmunge is loaded at
# run time by submit-check only (dlopen: the step hooks never need it), its header checked here
[ -f /usr/include/nghttp2/nghttp2.h ] || die "/usr/include/nghttp2/nghttp2.h not found; run scripts/install-deps.sh (installs libnghttp2-dev)"
[ -f /usr/include/munge.h ] || die "/usr/include/munge.h not found; run scripts/install-deps.sh (installs libmunge-dev)"
HOOK_SRC=(berth-hook.c berth_hook_step.c berth_hook_job.c berth_hook_allocation.c berth_hook_options.c berth_hook_env.c
  berth_hook_faults.c berth_grpc.c berth_pb.c berth_submit_check.c berth_utf8.c)
gcc "${CFLAGS_NATIVE[@]}" -o "$OUT/berth-hook.tmp" "${HOOK_SRC[@]/#/$SRC/}" -lnghttp2 -lm -ldl \
  || die "compiling $SRC/berth-hook.c (with ${HOOK_SRC[*]:1}) failed (see above)"
mv -f "$OUT/berth-hook.tmp" "$OUT/berth-hook"
echo "build-native: $OUT/berth-hook"

# berth-exec: the ExecStep stream over the user socket (berth_grpc.c), its credential from
# libmunge (munge_encode, as `munge -s` makes it, without a process of its own: linked, as
# every call of berth-exec by a user needs it)
EXEC_SRC=(berth-exec.c berth_grpc.c berth_pb.c berth_utf8.c)
gcc "${CFLAGS_NATIVE[@]}" -o "$OUT/berth-exec.tmp" "${EXEC_SRC[@]/#/$SRC/}" -lnghttp2 -lmunge \
  || die "compiling $SRC/berth-exec.c (with ${EXEC_SRC[*]:1}) failed (see above)"
mv -f "$OUT/berth-exec.tmp" "$OUT/berth-exec"
echo "build-native: $OUT/berth-exec"

if [ -f "$SRC/berth-init.c" ]; then
  gcc -static "${CFLAGS_NATIVE[@]}" -o "$OUT/berth-init.tmp" "$SRC/berth-init.c" \
    || die "compiling $SRC/berth-init.c failed (see above); a static build needs libc6-dev"
  mv -f "$OUT/berth-init.tmp" "$OUT/berth-init"
  echo "build-native: $OUT/berth-init"
else
  echo "build-native: warning: $SRC/berth-init.c not found, berth-init not built" >&2
fi
