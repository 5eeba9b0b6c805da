# `scripts/sandbox up` and `down` (sourced by scripts/sandbox).

up_cmd() {
  local build=1
  while [ $# -gt 0 ]; do
    case "$1" in
      --no-build) build="" ;;
      --diskless) shift; [ $# -gt 0 ] || die "--diskless needs a node, e.g. --diskless n3"; DISKLESS_NODE="$1" ;;
      *) die "unknown option for up: '$1' (expected: --no-build, --diskless NODE)" ;;
    esac
    shift
  done
  if [ -n "$build" ]; then
    "$REPO/scripts/install-deps.sh"
    say "build: npm run build"
    (cd "$REPO" && npm run build) \
      || die "'npm run build' failed (output above); fix the build, then rerun 'scripts/sandbox up'"
    "$REPO/scripts/build-native.sh"
    "$REPO/scripts/install.sh" "$PREFIX"
  else
    say "build: skipped (--no-build); using what is installed under $PREFIX"
  fi
  install -d -m 0755 "$STATE_DIR" "$RUN_DIR" "$LOG_DIR"
  users_up
  devices_up
  munge_up
  # berthd first: it serves the AuthZ plugin every dockerd request passes and writes
  # dockerd's TLS files; it waits for its dockerd by itself
  berthd_up
  docker_up
  registry_up
  mirror_up
  tier_up
  image_up
  private_up
  slurmdbd_up
  slurm_up
  say "up: everything is running ('scripts/sandbox status' for pids and logs)"
}

# Mounts a hard-killed dockerd leaves behind (data-root, netns) block rm -rf; unmount them,
# deepest first.
unmount_under() {
  local prefix="$1" m
  awk -v p="$prefix" '$2 == p || index($2, p "/") == 1 {print $2}' /proc/mounts | sort -r \
    | while read -r m; do
      umount "$m" 2>/dev/null || umount -l "$m" || warn "could not unmount $m"
    done
}

down_cmd() {
  local purge=""
  while [ $# -gt 0 ]; do
    case "$1" in
      --purge) purge=1 ;;
      *) die "unknown option for down: '$1' (expected: --purge)" ;;
    esac
    shift
  done
  berthd_down
  slurm_down
  slurmdbd_down
  tier_down
  mirror_down
  private_down
  registry_down
  docker_down
  munge_down
  if [ -n "$purge" ]; then
    local d n
    for d in "$STATE_DIR" "$RUN_DIR"; do
      unmount_under "$d"
      rm -rf "$d"
    done
    for n in "${NODES[@]}"; do rm -rf "${BERTH_RUN_DIR:?}/$n"; done
    rmdir "$BERTH_RUN_DIR" 2>/dev/null || true
    rm -f "$BERTH_SITE_RULES"
    rmdir "$(dirname "$BERTH_SITE_RULES")" 2>/dev/null || true
    say "down: purged $STATE_DIR, $RUN_DIR, $BERTH_SITE_RULES and $BERTH_RUN_DIR/{$(IFS=,; echo "${NODES[*]}")} (logs kept in $LOG_DIR)"
  else
    say "down: stopped; state kept in $STATE_DIR (down --purge deletes it)"
  fi
}
