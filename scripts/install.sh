#!/usr/bin/env bash
# Installs the built berth onto this machine (run `npm run build` and scripts/build-native.sh
# first):
#   PREFIX/lib/berth/        dist/* (berth.js, berthd.js, ...), build/native/* (berth_spank.so,
#                            berth-init, berth-hook, berth-exec), hooks/{prolog,epilog,task-prolog} for slurm.conf
#   PREFIX/bin/berth         wrapper: exec NODE PREFIX/lib/berth/berth.js (`berth exec`: berth-exec)
#   PREFIX/sbin/berthd       wrapper: exec NODE PREFIX/lib/berth/berthd.js
#   PREFIX/share/berth/      examples/ (site.json, berthd.json, daemon.json, slurm.conf and plugstack.conf
#                            lines, logrotate, Prometheus) and systemd/ (berthd.service and
#                            the docker.service and slurmd.service drop-ins), for reference
#   PREFIX/share/doc/berth/  docs/*.md
# With --systemd also UNIT_DIR/berthd.service (UNIT_DIR: $SYSTEMD_UNIT_DIR, default
# /etc/systemd/system), its paths set to PREFIX. Nothing is enabled, started or restarted, and
# nothing else outside PREFIX is written: /etc/berth (site.json, berthd.json), daemon.json, slurm.conf and the drop-ins
# are the admin's (docs/install.md).
# Usage: scripts/install.sh [--systemd] [PREFIX]   (default /usr/local; NODE=/path/to/node to
# pick a node)
# Idempotent; every file is written to a temporary name and renamed, so running hooks and
# daemons never see a half-written file.
set -euo pipefail

die() { echo "install: $*" >&2; exit 1; }
usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"; }

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SYSTEMD=""
PREFIX=""
for arg in "$@"; do
  case "$arg" in
    --systemd) SYSTEMD=1 ;;
    -h | --help) usage; exit 0 ;;
    -*) die "unknown option '$arg'; usage: scripts/install.sh [--systemd] [PREFIX]" ;;
    *) [ -z "$PREFIX" ] || die "one PREFIX only, got '$PREFIX' and '$arg'"; PREFIX="$arg" ;;
  esac
done
PREFIX="${PREFIX:-/usr/local}"
case "$PREFIX" in /*) ;; *) die "PREFIX must be an absolute path, got '$PREFIX'";; esac
PREFIX="${PREFIX%/}"
case "$PREFIX" in *[[:space:]\'\"\|\\]*) die "PREFIX must not contain spaces, quotes, | or \\, got '$PREFIX'";; esac
LIB="$PREFIX/lib/berth"

NODE_BIN="${NODE:-$(command -v node || true)}"
[ -n "$NODE_BIN" ] || die "node not found in PATH; install Node.js 20 or set NODE=/path/to/node"
case "$NODE_BIN" in /*) ;; *) NODE_BIN="$(cd "$(dirname "$NODE_BIN")" && pwd)/$(basename "$NODE_BIN")";; esac
[ -x "$NODE_BIN" ] || die "node at '$NODE_BIN' is not executable"

for f in dist/berth.js dist/berthd.js; do
  [ -f "$REPO/$f" ] || die "$REPO/$f is missing; run 'npm run build' first"
done
[ -f "$REPO/build/native/berth_spank.so" ] || die "$REPO/build/native/berth_spank.so is missing; run scripts/build-native.sh first"
[ -f "$REPO/build/native/berth-init" ] || echo "install: warning: build/native/berth-init missing; job containers need it" >&2
[ -f "$REPO/build/native/berth-hook" ] || echo "install: warning: build/native/berth-hook missing; container steps run the Node.js berth hook instead" >&2
[ -f "$REPO/build/native/berth-exec" ] || echo "install: warning: build/native/berth-exec missing; berth exec runs the Node.js client instead" >&2

umask 022
mkdir -p "$LIB/hooks" "$PREFIX/bin" "$PREFIX/sbin"

# put MODE SRC DEST: copy atomically
put() {
  local mode="$1" src="$2" dest="$3"
  install -m "$mode" "$src" "$dest.berth-tmp"
  mv -f "$dest.berth-tmp" "$dest"
}
# write MODE DEST < content
write() {
  local mode="$1" dest="$2"
  cat >"$dest.berth-tmp"
  chmod "$mode" "$dest.berth-tmp"
  mv -f "$dest.berth-tmp" "$dest"
}

# dist/: every file, keeping sub-directories. The entry points go last, so they never name a
# chunk that is not there yet; files an earlier install put there and this build no longer
# has (old hashed chunks) are removed, as listed in .dist-manifest.
MANIFEST="$LIB/.dist-manifest"
new_manifest="$(mktemp)"
(cd "$REPO/dist" && find . -type f | sed 's|^\./||' | sort) >"$new_manifest"
{ grep -vxE 'berthd?\.js' "$new_manifest" || true; } | while IFS= read -r rel; do
  mkdir -p "$LIB/$(dirname "$rel")"
  put 0644 "$REPO/dist/$rel" "$LIB/$rel"
done
put 0644 "$REPO/dist/berthd.js" "$LIB/berthd.js"
put 0644 "$REPO/dist/berth.js" "$LIB/berth.js"
if [ -f "$MANIFEST" ]; then
  comm -23 <(sort "$MANIFEST") "$new_manifest" | while IFS= read -r rel; do
    case "$rel" in */../* | ../* | /*) continue ;; esac
    rm -f "$LIB/$rel"
  done
fi
install -m 0644 "$new_manifest" "$MANIFEST"
# the bundles are ES modules named .js: say so, or node has to guess (slower, per hook run)
if [ ! -f "$REPO/dist/package.json" ]; then
  echo '{"type":"module","private":true}' | write 0644 "$LIB/package.json"
fi
rm -f "$new_manifest"

for f in "$REPO"/build/native/*; do
  [ -f "$f" ] || continue
  put 0755 "$f" "$LIB/$(basename "$f")"
done

# site policies shipped with berth (the AuthZ plugin's default HPC policy)
if [ -d "$REPO/policies" ]; then
  mkdir -p "$LIB/policies"
  for f in "$REPO"/policies/*.json "$REPO"/policies/*.jsonl; do
    [ -f "$f" ] || continue
    put 0644 "$f" "$LIB/policies/$(basename "$f")"
  done
fi

# RUN_DIR: where berthd keeps its sockets and job files (its runDir; /run/berth by default)
RUN_DIR="${BERTH_RUN_DIR:-/run/berth}"
for hook in prolog epilog task-prolog; do
  sed -e "s|@PREFIX@|$PREFIX|g" -e "s|@RUNDIR@|$RUN_DIR|g" "$REPO/scripts/slurm/$hook" | write 0755 "$LIB/hooks/$hook"
done

# `berth exec` (srun runs it once per task) goes to the native client when it is installed; it
# hands what it does not handle itself back to `NODE berth.js exec ...`
printf '#!/bin/sh\nif [ "$1" = exec ] && [ -x %s ]; then exec %s --node=%s --berth-js=%s "$@"; fi\nexec %s %s "$@"\n' \
  "$LIB/berth-exec" "$LIB/berth-exec" "$NODE_BIN" "$LIB/berth.js" "$NODE_BIN" "$LIB/berth.js" | write 0755 "$PREFIX/bin/berth"
# a small young generation: the agent is mostly idle and its bursts are small (RSS budget 80 MB);
# two malloc arenas: libuv's worker threads (TLS keys, fs) would each grow one of their own, and
# the soak showed RSS creeping while V8's heap stayed flat (docs/benchmarks.md, "Soak")
printf '#!/bin/sh\n: "${MALLOC_ARENA_MAX:=2}"\nexport MALLOC_ARENA_MAX\nexec %s --max-semi-space-size=1 %s "$@"\n' "$NODE_BIN" "$LIB/berthd.js" | write 0755 "$PREFIX/sbin/berthd"

# reference files: examples, systemd units, docs. The units name /usr/local; say PREFIX instead.
SHARE="$PREFIX/share/berth"
mkdir -p "$SHARE/examples" "$SHARE/systemd/docker.service.d" "$SHARE/systemd/slurmd.service.d" "$PREFIX/share/doc/berth"
for f in "$REPO"/scripts/examples/*; do
  [ -f "$f" ] || continue
  sed -e "s|/usr/local/|$PREFIX/|g" "$f" | write 0644 "$SHARE/examples/$(basename "$f")"
done
for rel in berthd.service docker.service.d/berth.conf slurmd.service.d/berth.conf; do
  sed -e "s|/usr/local/|$PREFIX/|g" "$REPO/scripts/systemd/$rel" | write 0644 "$SHARE/systemd/$rel"
done
for f in "$REPO"/docs/*.md; do
  [ -f "$f" ] || continue
  put 0644 "$f" "$PREFIX/share/doc/berth/$(basename "$f")"
done

if [ -n "$SYSTEMD" ]; then
  UNIT_DIR="${SYSTEMD_UNIT_DIR:-/etc/systemd/system}"
  case "$UNIT_DIR" in /*) ;; *) die "SYSTEMD_UNIT_DIR must be an absolute path, got '$UNIT_DIR'";; esac
  mkdir -p "$UNIT_DIR"
  put 0644 "$SHARE/systemd/berthd.service" "$UNIT_DIR/berthd.service"
  echo "install: wrote $UNIT_DIR/berthd.service (not enabled, not started)"
  echo "install: next (docs/install.md, sections 4 to 7), from $SHARE:"
  echo "install:   examples/site.json      -> /etc/berth/site.json (every compute and login node)"
  echo "install:   examples/berthd.json    -> /etc/berth/berthd.json"
  echo "install:   examples/daemon.json    -> /etc/docker/daemon.json"
  echo "install:   systemd/docker.service.d/berth.conf -> /etc/systemd/system/docker.service.d/berth.conf"
  echo "install:   systemd/slurmd.service.d/berth.conf -> /etc/systemd/system/slurmd.service.d/berth.conf"
  echo "install:   then: systemctl daemon-reload && systemctl enable --now berthd docker && systemctl restart slurmd"
else
  echo "install: next on a login node: $SHARE/examples/site.json -> /etc/berth/site.json, the same file as on the compute nodes (docs/install.md, section 4)"
fi

echo "install: berth installed under $PREFIX (node: $NODE_BIN)"
