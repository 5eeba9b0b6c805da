#!/usr/bin/env bash
# Runs NVIDIA pyxis's own bats test suite against berth in the sandbox (an acceptance tool, run by
# hand: CI has no pyxis checkout). See docs/pyxis-suite.md for how to read the result.
#
#   scripts/pyxis-suite.sh PYXIS_DIR [FILE.bats ...]
#
# PYXIS_DIR is a pyxis checkout (its tests/ folder is used; it is not changed). FILE.bats are
# paths relative to tests/ (e.g. mounts.bats sbatch/sbatch.bats); none means every file.
# Run as root with the sandbox up (scripts/sandbox up && scripts/sandbox settle), under the
# sandbox lock. The tests are copied to a scratch dir owned by alice, where only image names are
# rewritten (below); then, for each file, alice runs `salloc -N1 --exclusive bats --tap FILE`
# from the scratch dir, as pyxis's tests expect: they call srun and sbatch themselves.
#
# Image substitutions (the sandbox has no internet, so no Docker Hub or nvcr.io):
#   ubuntu:16.04 18.04 20.04 22.04 24.04 26.04, and ubuntu with no tag
#       → 127.0.0.1:5000/pyxis-suite/ubuntu:TAG (latest for no tag), a stand-in built here from
#         the files of a few packages installed on the sandbox host (Debian: bash, coreutils,
#         util-linux's findmnt, perl-base, grep, sed, mawk, findutils, debianutils and what they
#         depend on). Its /etc/os-release names the tag it stands in for ("Ubuntu 22.04 stand-in
#         ..."), so a test that checks *which* image ran (PYXIS_CONTAINER_IMAGE precedence, the
#         batch script in the container) can tell them apart; it is no Ubuntu: no apt sources,
#         no network.
#   Not substituted: docker_image.bats (its tests are about pulling from Docker Hub, nvcr.io,
#       gcr.io and gitlab; a stand-in would make them pass for nothing), and every other image
#       (centos, nvidia/cuda, nvcr.io, docker:dind, nginx, redis, rabbitmq, pytorch): nothing
#       here could stand in for what those tests check (an image's own environment, entrypoint
#       or programs), so they fail to pull, and docs/pyxis-suite.md counts them as images this
#       machine cannot have.
#
# Output: each file's TAP on stdout, then one line per file (passed/failed/skipped) and a total;
# the TAP files stay in the scratch dir (printed at the end). Exit 0 when every file ran, whatever
# the tests' outcome (it is a measurement, not a gate).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SANDBOX_D="$REPO/scripts/sandbox.d"
# shellcheck source=/dev/null
for f in common docker registry; do source "$SANDBOX_D/$f.sh"; done

SUITE_USER=alice
STANDIN_REPO="$REGISTRY_ADDR/pyxis-suite/ubuntu"
STANDIN_TAGS=(16.04 18.04 20.04 22.04 24.04 26.04 latest)
STANDIN_PACKAGES=(base-files bash dash coreutils grep sed mawk util-linux mount findutils debianutils perl-base libc-bin)
NOT_REWRITTEN=(docker_image.bats)
ALLOC_MINUTES="${PYXIS_SUITE_MINUTES:-60}"

usage() { sed -n '2,/^set /p' "${BASH_SOURCE[0]}" | sed '$d' | sed 's/^# \{0,1\}//'; exit "${1:-2}"; }

# installed_closure PKG...: the installed packages PKG... and everything they depend on
installed_closure() {
  local -A seen=()
  local todo=("$@") p d
  while [ ${#todo[@]} -gt 0 ]; do
    p="${todo[0]}"
    todo=("${todo[@]:1}")
    [ -n "${seen[$p]:-}" ] && continue
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || continue
    seen[$p]=1
    for d in $(dpkg-query -W -f='${Depends},${Pre-Depends}' "$p" | tr ',' '\n' | sed 's/|.*//; s/(.*)//; s/:any//' | tr -d ' '); do
      todo+=("$d")
    done
  done
  printf '%s\n' "${!seen[@]}" | sort
}

standin_in_registry() { probe http "http://$REGISTRY_ADDR/v2/pyxis-suite/ubuntu/manifests/$1"; }

standin_rootfs() {
  local dir="$1" list p
  list="$(mktemp /tmp/pyxis-suite-files.XXXXXX)"
  for p in $(installed_closure "${STANDIN_PACKAGES[@]}"); do dpkg -L "$p"; done \
    | grep '^/.' | grep -vE '^/usr/share/(doc|man|info|locale)/' \
    | sed -E 's#^/(bin|sbin|lib|lib64)(/|$)#/usr/\1\2#' | sort -u \
    | while read -r f; do if [ -e "$f" ] || [ -L "$f" ]; then echo "${f#/}"; fi; done >"$list"
  # merged /usr as on the host: dpkg lists /bin/bash, the file is /usr/bin/bash
  for p in bin sbin lib lib64; do mkdir -p "$dir/usr/$p" && ln -sfn "usr/$p" "$dir/$p"; done
  tar -C / --no-recursion -T "$list" -cf - | tar -C "$dir" -xf -
  rm -f "$list"
  mkdir -p "$dir"/{etc,root,home,tmp,var/tmp,proc,sys,dev,run,mnt,usr/local/bin}
  chmod 1777 "$dir/tmp" "$dir/var/tmp"
  printf 'root:x:0:0:root:/root:/bin/bash\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n' >"$dir/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' >"$dir/etc/group"
  rm -f "$dir/etc/os-release"
}

# standin_up: builds the stand-in once and pushes one tag per stand-in; skipped for tags the
# registry already has, so digests stay stable across runs
standin_up() {
  local missing=() t host dir ctx base="$STANDIN_REPO:base"
  for t in "${STANDIN_TAGS[@]}"; do standin_in_registry "$t" || missing+=("$t"); done
  [ ${#missing[@]} -eq 0 ] && { say "pyxis-suite: stand-in images already in the registry"; return 0; }
  host="unix://$(docker_sock n1)"
  dir="$(mktemp -d /tmp/pyxis-suite-rootfs.XXXXXX)"
  standin_rootfs "$dir"
  tar -C "$dir" -c . | docker -H "$host" import - "$base" >/dev/null || { rm -rf "$dir"; die "docker import of the stand-in on n1 failed"; }
  rm -rf "$dir"
  for t in "${missing[@]}"; do
    ctx="$(mktemp -d /tmp/pyxis-suite-ctx.XXXXXX)"
    local v="$t"; [ "$t" = latest ] && v="(latest)"
    cat >"$ctx/os-release" <<EOF
PRETTY_NAME="Ubuntu $v stand-in (Debian files from the berth sandbox host)"
NAME="Ubuntu $v stand-in"
ID=debian
HOME_URL="https://github.com/NVIDIA/pyxis"
EOF
    printf 'FROM %s\nCOPY os-release /etc/os-release\nCMD ["/bin/bash"]\n' "$base" >"$ctx/Dockerfile"
    # the legacy builder: buildx is not installed here (it warns that it is deprecated)
    DOCKER_BUILDKIT=0 docker -H "$host" build -q -t "$STANDIN_REPO:$t" "$ctx" >"$ctx.log" 2>&1 \
      || { cat "$ctx.log" >&2; rm -rf "$ctx" "$ctx.log"; die "building $STANDIN_REPO:$t on n1 failed"; }
    rm -f "$ctx.log"
    rm -rf "$ctx"
    registry_push_as_site "$STANDIN_REPO:$t" || die "pushing $STANDIN_REPO:$t failed"
    docker -H "$host" rmi "$STANDIN_REPO:$t" >/dev/null
    standin_in_registry "$t" || die "$STANDIN_REPO:$t was pushed but the registry does not list it"
    say "pyxis-suite: pushed $STANDIN_REPO:$t"
  done
  docker -H "$host" rmi "$base" >/dev/null
}

# rewrite FILE: the image names in --container-image / PYXIS_CONTAINER_IMAGE values only
rewrite() {
  sed -E -i \
    -e "s#(--container-image[= ]|PYXIS_CONTAINER_IMAGE=)ubuntu:([0-9]{2}\.[0-9]{2})#\1$STANDIN_REPO:\2#g" \
    -e "s#(--container-image[= ]|PYXIS_CONTAINER_IMAGE=)ubuntu([[:space:]\"']|\$)#\1$STANDIN_REPO:latest\2#g" \
    "$1"
}

main() {
  [ $# -ge 1 ] || usage 2
  case "$1" in -h | --help) usage 0 ;; esac
  [ "$(id -u)" -eq 0 ] || die "run as root (it pushes the stand-in images with the site login, then runs the tests as $SUITE_USER)"
  local src="$1"; shift
  [ -f "$src/tests/common.bash" ] || die "$src is not a pyxis checkout (no tests/common.bash)"
  command -v bats >/dev/null || die "bats not found (apt-get install -y bats)"
  "$REPO/scripts/sandbox" status >/dev/null 2>&1 || die "the sandbox is not running: scripts/sandbox up && scripts/sandbox settle"

  standin_up

  local scratch files=() f base
  scratch="$(mktemp -d /tmp/pyxis-suite.XXXXXX)"
  cp -r "$src/tests" "$scratch/tests"
  while IFS= read -r f; do
    base="${f#"$scratch/tests/"}"
    [[ " ${NOT_REWRITTEN[*]} " == *" $base "* ]] || rewrite "$f"
  done < <(find "$scratch/tests" -name '*.bats' | sort)
  mkdir -p "$scratch/tap"
  chown -R "$SUITE_USER:" "$scratch"
  chmod 0755 "$scratch"

  if [ $# -gt 0 ]; then files=("$@"); else
    while IFS= read -r f; do files+=("${f#"$scratch/tests/"}"); done < <(find "$scratch/tests" -name '*.bats' | sort)
  fi

  local summary="" tp=0 tf=0 ts=0 p n s tap
  for f in "${files[@]}"; do
    [ -f "$scratch/tests/$f" ] || die "no tests/$f in $src"
    tap="$scratch/tap/${f//\//_}.tap"
    echo "# === $f"
    runuser -l "$SUITE_USER" -c "cd '$scratch' && salloc -Q -N1 --exclusive -t $ALLOC_MINUTES bats --tap 'tests/$f'" \
      >"$tap" 2>"$tap.log" || true
    cat "$tap"
    s="$(grep -cE '^ok .* # skip' "$tap" || true)"
    p="$(grep -E '^ok ' "$tap" | grep -cvE ' # skip' || true)"
    n="$(grep -cE '^not ok ' "$tap" || true)"
    tp=$((tp + p)); tf=$((tf + n)); ts=$((ts + s))
    summary+="$(printf '%-24s %3d passed %3d failed %3d skipped' "$f" "$p" "$n" "$s")"$'\n'
  done
  echo "# === per file"
  printf '%s' "$summary"
  printf '%-24s %3d passed %3d failed %3d skipped (of %d)\n' total "$tp" "$tf" "$ts" $((tp + tf + ts))
  echo "# TAP and bats's stderr (the test's own log) per file: $scratch/tap"
}

main "$@"
