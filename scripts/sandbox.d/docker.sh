# One Docker engine per sandbox node (sourced by scripts/sandbox). No bridge, no iptables, no
# private addresses: containers use --network host or none. Every request passes berthd's
# AuthZ plugin (berth-<node>); besides its root-only unix socket each engine listens on
# 127.0.0.1 with --tlsverify for job users, with TLS files berthd makes from its node CA, so
# berthd starts first. Each engine has its own data-root,
# exec-root (so its own managed containerd), pid file and socket, and its own containerd
# namespaces in case a system containerd is running and gets shared. Container logs are bounded
# (max-size, max-file), as berth's AuthZ plugin requires of users' containers.

# One node's engine (n3) keeps its data-root on a small disk of its own, a loop-mounted ext4
# image file, so that a test can fill it: the disk-full drill (test/e2e/node-drills.test.ts)
# pulls an image bigger than what is free there. The others use the machine's disk.
SMALL_DISK_NODE=n3
SMALL_DISK_MIB=256

# `scripts/sandbox up --diskless NODE` (or BERTH_SANDBOX_DISKLESS=NODE) runs that node's engine
# as on a node without a local disk: its data-root is a tmpfs of DISKLESS_MIB, and its berthd
# keeps the images within DISKLESS_BUDGET_BYTES (imageGc.budgetBytes; the rest of the tmpfs is
# room for containers and for a pull's download beside its unpacked layers, docs/design/diskless.md).
# A later `up` without it puts the node back on its disk (n3's small disk keeps its images).
DISKLESS_NODE="${BERTH_SANDBOX_DISKLESS:-}"
DISKLESS_MIB="${BERTH_SANDBOX_DISKLESS_MIB:-768}"
DISKLESS_BUDGET_BYTES="${BERTH_SANDBOX_DISKLESS_BUDGET_BYTES:-384000000}"

docker_sock() { echo "$RUN_DIR/$1/docker.sock"; }
docker_data_root() { echo "$STATE_DIR/$1/docker"; }
docker_disk_image() { echo "$STATE_DIR/$1/docker-disk.ext4"; }

# docker_disk_mounted NODE: the node's data-root is its own disk image, loop-mounted (dockerd's
# own bind mount of its data-root onto itself does not count)
docker_disk_mounted() {
  local img loops src
  img="$(docker_disk_image "$1")"
  [ -f "$img" ] || return 1
  loops="$(losetup -n -O NAME -j "$img" 2>/dev/null)"
  [ -n "$loops" ] || return 1
  for src in $(findmnt -rn -o SOURCE --mountpoint "$(docker_data_root "$1")" 2>/dev/null); do
    grep -qxF "$src" <<<"$loops" && return 0
  done
  return 1
}

# docker_small_disk NODE: makes (once) and mounts the node's disk image on its data-root; an
# engine that runs on the machine's disk instead (a sandbox made before) is stopped first and
# its old data-root emptied (its images are pulled again; nothing runs in an idle sandbox)
docker_small_disk() {
  local n="$1" img dir
  [ "$n" = "$SMALL_DISK_NODE" ] || return 0
  docker_disk_mounted "$n" && return 0
  img="$(docker_disk_image "$n")"
  dir="$(docker_data_root "$n")"
  if docker_running "$n"; then
    say "docker: moving dockerd $n's data-root onto a ${SMALL_DISK_MIB} MiB disk of its own ($img); restarting dockerd $n"
    stop_pid "$(docker_pidfile "$n")" "$(docker_marker "$n")" "dockerd $n" 30
  fi
  unmount_under "$dir"
  rm -rf "$dir"
  install -d -m 0711 "$dir"
  if [ ! -f "$img" ]; then
    truncate -s "${SMALL_DISK_MIB}M" "$img.tmp"
    mkfs.ext4 -q -F -m 0 -L "berth-$n" "$img.tmp" || die "mkfs.ext4 could not make $img.tmp"
    mv -f "$img.tmp" "$img"
  fi
  mount -o loop "$img" "$dir" || die "could not loop-mount $img on $dir (dmesg may say why)"
  chmod 0711 "$dir"
  say "docker: $dir is a ${SMALL_DISK_MIB} MiB ext4 disk of its own ($img)"
}

# docker_tmpfs_mounted NODE: the node's data-root is a tmpfs of DISKLESS_MIB
docker_tmpfs_mounted() {
  [ "$(findmnt -rn -o FSTYPE,SIZE --mountpoint "$(docker_data_root "$1")" 2>/dev/null | head -1)" = "tmpfs ${DISKLESS_MIB}M" ]
}

# docker_diskless NODE: puts the node's data-root on a tmpfs (dockerd stopped first: its images
# are pulled again; a data-root on the machine's disk is only hidden under the tmpfs)
docker_diskless() {
  local n="$1" dir
  dir="$(docker_data_root "$n")"
  docker_tmpfs_mounted "$n" && return 0
  if docker_running "$n"; then
    say "docker: moving dockerd $n's data-root onto a ${DISKLESS_MIB} MiB tmpfs (a diskless node); restarting dockerd $n"
    stop_pid "$(docker_pidfile "$n")" "$(docker_marker "$n")" "dockerd $n" 30
  fi
  unmount_under "$dir"
  install -d -m 0711 "$dir"
  mount -t tmpfs -o "size=${DISKLESS_MIB}m,mode=0711" "berth-$n-diskless" "$dir" || die "could not mount a tmpfs on $dir"
  say "docker: $dir is a ${DISKLESS_MIB} MiB tmpfs (diskless node $n, image budget $DISKLESS_BUDGET_BYTES bytes)"
}

# docker_data_root_fs NODE: the file system the node's data-root should be on, made so
docker_data_root_fs() {
  local n="$1"
  if [ "$n" = "$DISKLESS_NODE" ]; then docker_diskless "$n"; return; fi
  if findmnt -rn -o FSTYPE --mountpoint "$(docker_data_root "$n")" 2>/dev/null | grep -qx tmpfs; then
    # diskless before: back onto its disk
    if docker_running "$n"; then
      say "docker: dockerd $n's data-root goes back from its tmpfs onto its disk; restarting dockerd $n"
      stop_pid "$(docker_pidfile "$n")" "$(docker_marker "$n")" "dockerd $n" 30
    fi
    unmount_under "$(docker_data_root "$n")"
  fi
  docker_small_disk "$n"
}
docker_pidfile() { echo "$RUN_DIR/$1/docker.pid"; }
docker_log() { echo "$LOG_DIR/$1/dockerd.log"; }
docker_marker() { echo "--host unix://$(docker_sock "$1")"; }

docker_ping() { probe unix-http "$(docker_sock "$1")" /_ping; }

# runtimes for the node's dockerd: berth-runc (berthd's runtime gate in front of runc) is the
# default, so every container of a job runs in the job's cgroup with its binds pinned; and
# live-restore, as docs/install.md ships it: job containers outlive a restart of dockerd.
# berth's AuthZ plugin is named here, not with --authorization-plugin: dockerd 20.10's reload
# (SIGHUP, `systemctl reload docker`) takes the plugin list from this file alone, and a
# plugin given as a flag stops being asked after a reload (measured: no request reached it).
# Prints the file's path; DOCKER_JSON_CHANGED=1 when its content changed.
DOCKER_JSON_CHANGED=""
docker_daemon_json() {
  local n="$1" f="$STATE_DIR/$1/daemon.json"
  cat >"$f.tmp" <<JSON
{
  "authorization-plugins": ["berth-$n"],
  "live-restore": true,
  "runtimes": {
    "berth": { "path": "$BERTH_LIB/berth-runc", "runtimeArgs": ["--berth-socket=$BERTH_RUN_DIR/$n/runtime.sock", "--berth-runc=$(command -v runc)"] }
  },
  "default-runtime": "berth"
}
JSON
  DOCKER_JSON_CHANGED=""
  if cmp -s "$f.tmp" "$f"; then rm -f "$f.tmp"; else mv -f "$f.tmp" "$f"; DOCKER_JSON_CHANGED=1; fi
  echo "$f"
}

docker_start() {
  local n="$1" pidfile sock
  pidfile="$(docker_pidfile "$n")"
  sock="$(docker_sock "$n")"
  is_running "$pidfile" "$(docker_marker "$n")" && return 0
  # dockerd refuses to start over a pid file whose pid is alive (pid reuse after a hard kill);
  # pid_of said it is not our dockerd, so the file is stale
  rm -f "$pidfile" "$sock"
  install -d -m 0711 "$(docker_data_root "$n")" "$RUN_DIR/$n/docker-exec"
  local daemon_json
  docker_daemon_json "$n" >/dev/null
  daemon_json="$STATE_DIR/$n/daemon.json"
  install -d -m 0755 "$LOG_DIR/$n"
  # dockerd writes the same pid to --pidfile itself and would take our copy for another
  # daemon's, so start_bg's record goes to a scratch file and dockerd owns docker.pid
  start_bg "$RUN_DIR/$n/dockerd.launch" "$(docker_log "$n")" /usr/sbin/dockerd \
    --config-file "$daemon_json" \
    --host "unix://$sock" \
    --data-root "$(docker_data_root "$n")" \
    --exec-root "$RUN_DIR/$n/docker-exec" \
    --pidfile "$pidfile" \
    --bridge=none --iptables=false --ip-masq=false \
    --containerd-namespace "berth-$n" --containerd-plugins-namespace "berth-$n-plugins" \
    --log-opt max-size=10m --log-opt max-file=3 \
    --host "tcp://127.0.0.1:$(berthd_docker_tls_port "$n")" --tlsverify \
    --tlscacert "$(berthd_tls_dir "$n")/ca.pem" --tlscert "$(berthd_tls_dir "$n")/server.pem" --tlskey "$(berthd_tls_dir "$n")/server-key.pem"
}

docker_up() {
  local n
  local started=()
  [ -z "$DISKLESS_NODE" ] || printf '%s\n' "${NODES[@]}" | grep -qxF -- "$DISKLESS_NODE" \
    || die "--diskless: no sandbox node '$DISKLESS_NODE' (nodes: ${NODES[*]})"
  for n in "${NODES[@]}"; do
    docker_data_root_fs "$n"
    if is_running "$(docker_pidfile "$n")" "$(docker_marker "$n")" \
      && tr '\0' ' ' <"/proc/$(pid_of "$(docker_pidfile "$n")" "$(docker_marker "$n")")/cmdline" | grep -q -- '--authorization-plugin '; then
      # started by an older sandbox with the plugin as a flag: a reload would drop it; restart
      say "docker: dockerd $n names berth's AuthZ plugin as a flag, which a reload drops; restarting it"
      stop_pid "$(docker_pidfile "$n")" "$(docker_marker "$n")" "dockerd $n" 30
    fi
    if ! is_running "$(docker_pidfile "$n")" "$(docker_marker "$n")"; then
      docker_start "$n"
      started+=("$n")
    else
      # a running dockerd rereads daemon.json on SIGHUP; live-restore and runtimes are among
      # the keys it reloads (dockerd logs "Reloaded configuration")
      docker_daemon_json "$n" >/dev/null
      if [ -n "$DOCKER_JSON_CHANGED" ]; then
        kill -HUP "$(pid_of "$(docker_pidfile "$n")" "$(docker_marker "$n")")"
        say "docker: dockerd $n rereads $STATE_DIR/$n/daemon.json (SIGHUP)"
      fi
    fi
  done
  for n in "${started[@]}"; do
    if ! wait_for 60 "dockerd $n" docker_ping "$n"; then
      log_tail "$(docker_log "$n")" >&2
      die "dockerd for $n did not answer /_ping on $(docker_sock "$n") within 60 s (log: $(docker_log "$n"))"
    fi
    wait_for 5 "dockerd $n pid file" is_running "$(docker_pidfile "$n")" "$(docker_marker "$n")" \
      || die "dockerd for $n answers but $(docker_pidfile "$n") does not name it"
    rm -f "$RUN_DIR/$n/dockerd.launch"
    if [ "$n" = "$SMALL_DISK_NODE" ] || [ "$n" = "$DISKLESS_NODE" ]; then
      local driver
      driver="$(docker -H "unix://$(docker_sock "$n")" info --format '{{.Driver}}' 2>/dev/null)"
      [ "$driver" = overlay2 ] || die "dockerd $n runs its data-root on $(findmnt -rn -o SOURCE,FSTYPE --mountpoint "$(docker_data_root "$n")" | head -1) with storage driver '$driver', not overlay2 (log: $(docker_log "$n"))"
    fi
    say "docker: started dockerd $n (pid $(cat "$(docker_pidfile "$n")"), $(docker_sock "$n"))"
  done
}

docker_down() {
  local n
  for n in "${NODES[@]}"; do
    # dockerd stops its containers first (up to 10 s each, in parallel), so give it time
    stop_pid "$(docker_pidfile "$n")" "$(docker_marker "$n")" "dockerd $n" 30
    # a dockerd that died before writing docker.pid
    stop_pid "$RUN_DIR/$n/dockerd.launch" "$(docker_marker "$n")" "dockerd $n (starting)" 10
  done
}

docker_running() { is_running "$(docker_pidfile "$1")" "$(docker_marker "$1")"; }
