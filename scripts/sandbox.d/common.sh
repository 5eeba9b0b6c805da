# Shared settings and helpers for scripts/sandbox (sourced, not run).
# Every daemon the sandbox starts has a pid file under $RUN_DIR; a pid counts as "ours" only
# while /proc/PID/cmdline still contains a marker unique to that daemon, so a stale pid file
# (process gone, pid reused) is never mistaken for a running daemon.

# shellcheck disable=SC2034  # used by the other sandbox.d files
STATE_DIR=/var/lib/berth-sandbox
RUN_DIR=/run/berth-sandbox
LOG_DIR=/var/log/berth-sandbox
BERTH_RUN_DIR=/run/berth
PREFIX=/usr/local
BERTH_LIB="$PREFIX/lib/berth"
NODES=(n1 n2 n3)
REGISTRY_ADDR=127.0.0.1:5000
DEMO_IMAGE="$REGISTRY_ADDR/berth/demo:1.0"
SLURM_CONF=/etc/slurm/slurm.conf
DEMO_USERS=(alice bob)

die() { echo "sandbox: error: $*" >&2; exit 1; }
say() { echo "sandbox: $*"; }
warn() { echo "sandbox: warning: $*" >&2; }

# pid_of PIDFILE MARKER: prints the pid if it is alive and its command line contains MARKER
pid_of() {
  local pidfile="$1" marker="$2" pid
  [ -s "$pidfile" ] || return 1
  pid="$(tr -dc '0-9' <"$pidfile")"
  [ -n "$pid" ] && alive "$pid" || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$marker" || return 1
  echo "$pid"
}

is_running() { pid_of "$1" "$2" >/dev/null; }

# alive PID: the process exists and is not a zombie (our daemons are reparented to an init
# that may be slow to reap, or never reap, them)
alive() { [ -d "/proc/$1" ] && ! grep -q '^State:[[:space:]]*Z' "/proc/$1/status" 2>/dev/null; }

# start_bg PIDFILE LOGFILE CMD...: starts CMD in its own session (it outlives this script and
# the caller's process group), output appended to LOGFILE, and records its pid.
start_bg() {
  local pidfile="$1" logfile="$2"
  shift 2
  mkdir -p "$(dirname "$pidfile")" "$(dirname "$logfile")"
  echo "--- $(date -Is) starting: $*" >>"$logfile"
  # no descriptor of the caller's is inherited: a daemon started under `flock LOCK -c ...` would
  # otherwise hold the lock for as long as it runs, and every later flock would wait forever
  (
    cd / || exit 1
    for fd in /proc/"$BASHPID"/fd/*; do
      fd="${fd##*/}"
      [ "$fd" -gt 2 ] 2>/dev/null && eval "exec $fd>&-" 2>/dev/null
    done
    exec setsid "$@" >>"$logfile" 2>&1 </dev/null
  ) &
  echo "$!" >"$pidfile"
}

# stop_pid PIDFILE MARKER NAME [GRACE]: SIGTERM, wait up to GRACE s (default 15), then SIGKILL
stop_pid() {
  local pidfile="$1" marker="$2" name="$3" grace="${4:-15}" pid i
  if ! pid="$(pid_of "$pidfile" "$marker")"; then
    rm -f "$pidfile"
    return 0
  fi
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < grace * 10; i++)); do
    alive "$pid" || break
    sleep 0.1
  done
  if alive "$pid"; then
    warn "$name (pid $pid) ignored SIGTERM for ${grace}s; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    sleep 0.2
  fi
  rm -f "$pidfile"
  say "stopped $name (pid $pid)"
}

# wait_for SECONDS DESCRIPTION CMD...: polls CMD every 0.2 s (DESCRIPTION is for the reader)
wait_for() {
  local secs="$1" i
  shift 2
  for ((i = 0; i < secs * 5; i++)); do
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  return 1
}

# probe http URL | probe unix-http SOCK PATH | probe connect SOCK (see probe.mjs)
probe() { node "$SANDBOX_D/probe.mjs" "$@"; }

log_tail() {
  local f="$1" n="${2:-20}"
  [ -f "$f" ] || { echo "  ($f does not exist)"; return 0; }
  echo "--- last $n lines of $f:"
  tail -n "$n" "$f" | sed 's/^/  /'
}

# nginx_config WHAT SHIPPED NEW CONF GLOBALS LOG PIDFILE MARKER: checks the config NEW (made
# from SHIPPED) with nginx -t, then puts it in place as CONF. A running nginx rereads it (HUP,
# only when it changed) and the status is 0; otherwise 1, and the caller starts nginx.
nginx_config() {
  local what="$1" shipped="$2" new="$3" conf="$4" globals="$5" log="$6" pidfile="$7" marker="$8" pid
  nginx -q -t -c "$new" -g "$globals" >>"$log" 2>&1 \
    || { log_tail "$log" >&2; die "nginx refused the config made from $shipped ($new; log: $log)"; }
  if pid="$(pid_of "$pidfile" "$marker")"; then
    cmp -s "$new" "$conf" && { rm -f "$new"; return 0; }
    mv -f "$new" "$conf"
    kill -HUP "$pid"
    say "$what: nginx (pid $pid) rereads $conf"
    return 0
  fi
  mv -f "$new" "$conf"
  return 1
}
