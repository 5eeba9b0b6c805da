# `scripts/sandbox status [--json]` (sourced by scripts/sandbox): one line (or one JSON field)
# per component, and whether everything is running.

bool() { if "$@"; then echo true; else echo false; fi; }
pid_or_dash() { pid_of "$1" "$2" || echo -; }

status_all_running() {
  local n
  munge_running && registry_running && mirror_running && tier_running && private_running && is_running "$SLURMCTLD_PIDFILE" "$SLURMCTLD_MARKER" || return 1
  is_running "$SLURMDBD_PIDFILE" "$SLURMDBD_MARKER" && is_running "$MARIADB_PIDFILE" "$MARIADB_MARKER" || return 1
  for n in "${NODES[@]}"; do
    docker_running "$n" && berthd_running "$n" \
      && is_running "$(slurmd_pidfile "$n")" "$(slurmd_marker "$n")" || return 1
  done
}

status_json() {
  local n first=1 munge_log="$MUNGE_LOG"
  # a munged the sandbox reused (not started) logs where its owner told it to; Debian's default
  if ! is_running "$MUNGE_PIDFILE" "$MUNGE_MARKER" && munge_works; then munge_log=/var/log/munge/munged.log; fi
  printf '{"nodes":['
  for n in "${NODES[@]}"; do
    [ -n "$first" ] || printf ','
    first=""
    printf '{"name":"%s","dockerSocket":"%s","dockerTlsAddress":"127.0.0.1:%s","metricsAddress":"127.0.0.1:%s","berthdAdminSocket":"%s","berthdUserSocket":"%s","authzSocket":"%s","berthdConfig":"%s",' \
      "$n" "$(docker_sock "$n")" "$(berthd_docker_tls_port "$n")" "$(berthd_metrics_port "$n")" "$(berthd_admin_sock "$n")" "$(berthd_user_sock "$n")" "$(berthd_authz_sock "$n")" "$(berthd_config "$n")"
    printf '"running":{"dockerd":%s,"berthd":%s,"slurmd":%s},' \
      "$(bool docker_running "$n")" "$(bool berthd_running "$n")" \
      "$(bool is_running "$(slurmd_pidfile "$n")" "$(slurmd_marker "$n")")"
    printf '"logs":{"dockerd":"%s","berthd":"%s","berthdOutput":"%s","slurmd":"%s","slurmdOutput":"%s","accounting":"%s","authzAudit":"%s"}}' \
      "$(docker_log "$n")" "$(berthd_log "$n")" "$(berthd_out "$n")" "$(slurmd_log "$n")" "$(slurmd_out "$n")" "$(berthd_accounting "$n")" "$(berthd_audit "$n")"
  done
  printf '],"mirror":{"address":"%s","running":%s,"log":"%s"},' "$MIRROR_ADDR" "$(bool mirror_running)" "$MIRROR_LOG"
  printf '"mirrorTier":{"address":"%s","upstream":"%s","running":%s,"log":"%s","cache":"%s"},' "$TIER_ADDR" "$REGISTRY_ADDR" "$(bool tier_running)" "$TIER_LOG" "$TIER_CACHE"
  printf '"privateRegistry":{"address":"%s","running":%s,"log":"%s","image":"%s","logins":"%s"},' \
    "$PRIVATE_ADDR" "$(bool private_running)" "$PRIVATE_LOG" "$PRIVATE_IMAGE" "$PRIVATE_LOGINS"
  printf '"registry":{"address":"%s","pushAddress":"%s","running":%s,"log":"%s","frontLog":"%s","pushLogins":"%s"},' \
    "$REGISTRY_ADDR" "$REGISTRY_PUSH_ADDR" "$(bool registry_running)" "$REGISTRY_LOG" "$REGISTRY_FRONT_LOG" "$REGISTRY_PUSH_LOGINS"
  printf '"slurmdbd":{"running":%s,"log":"%s","mariadb":{"running":%s,"log":"%s"}},' \
    "$(bool is_running "$SLURMDBD_PIDFILE" "$SLURMDBD_MARKER")" "$SLURMDBD_LOG" "$(bool is_running "$MARIADB_PIDFILE" "$MARIADB_MARKER")" "$MARIADB_OUT"
  printf '"slurm":{"slurmctld":{"running":%s,"log":"%s","output":"%s"},"conf":"%s"},' \
    "$(bool is_running "$SLURMCTLD_PIDFILE" "$SLURMCTLD_MARKER")" "$SLURMCTLD_LOG" "$SLURMCTLD_OUT" "$SLURM_CONF"
  printf '"munge":{"running":%s,"startedBySandbox":%s,"log":"%s"},' \
    "$(bool munge_running)" "$(bool is_running "$MUNGE_PIDFILE" "$MUNGE_MARKER")" "$munge_log"
  printf '"demoImage":"%s","users":["alice","bob"]}\n' "$DEMO_IMAGE"
}

status_table() {
  local n
  row() { printf '%-12s %-5s %-8s %s\n' "$@"; }
  row COMPONENT NODE PID LOG
  if is_running "$MUNGE_PIDFILE" "$MUNGE_MARKER"; then
    row munged - "$(pid_of "$MUNGE_PIDFILE" "$MUNGE_MARKER")" "$MUNGE_LOG"
  elif munge_works; then
    row munged - system "(not started by the sandbox)"
  else
    row munged - - "$MUNGE_LOG"
  fi
  row registry - "$(pid_or_dash "$REGISTRY_PIDFILE" "$REGISTRY_MARKER")" "$REGISTRY_LOG"
  row reg-front - "$(pid_or_dash "$REGISTRY_FRONT_PIDFILE" "$REGISTRY_FRONT_MARKER")" "$REGISTRY_FRONT_LOG"
  row mirror - "$(pid_or_dash "$MIRROR_PIDFILE" "$MIRROR_MARKER")" "$MIRROR_LOG"
  row mirror-tier - "$(pid_or_dash "$TIER_PIDFILE" "$TIER_MARKER")" "$TIER_LOG"
  row private - "$(pid_or_dash "$PRIVATE_PIDFILE" "$PRIVATE_MARKER")" "$PRIVATE_LOG"
  row mariadb - "$(pid_or_dash "$MARIADB_PIDFILE" "$MARIADB_MARKER")" "$MARIADB_OUT"
  row slurmdbd - "$(pid_or_dash "$SLURMDBD_PIDFILE" "$SLURMDBD_MARKER")" "$SLURMDBD_LOG"
  row slurmctld - "$(pid_or_dash "$SLURMCTLD_PIDFILE" "$SLURMCTLD_MARKER")" "$SLURMCTLD_LOG"
  for n in "${NODES[@]}"; do
    row dockerd "$n" "$(pid_or_dash "$(docker_pidfile "$n")" "$(docker_marker "$n")")" "$(docker_log "$n")"
    row slurmd "$n" "$(pid_or_dash "$(slurmd_pidfile "$n")" "$(slurmd_marker "$n")")" "$(slurmd_log "$n")"
    row berthd "$n" "$(pid_or_dash "$(berthd_pidfile "$n")" "$(berthd_marker "$n")")" "$(berthd_log "$n")"
  done
  echo "(PID '-' = not running)"
  echo "demo image: $DEMO_IMAGE   users: ${DEMO_USERS[*]}   slurm.conf: $SLURM_CONF"
  echo "registry: pulls $REGISTRY_ADDR (anonymous), pushes $REGISTRY_PUSH_ADDR (login 'site', password in $REGISTRY_PUSH_LOGINS)"
}

status_cmd() {
  if [ "${1:-}" = --json ]; then status_json; else status_table; fi
  if status_all_running; then
    [ "${1:-}" = --json ] || echo "sandbox: everything is running"
    return 0
  fi
  [ "${1:-}" = --json ] || echo "sandbox: some components are not running (scripts/sandbox up starts them)"
  return 1
}
