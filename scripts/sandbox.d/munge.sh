# munged for the sandbox (sourced by scripts/sandbox). Slurm authenticates with munge, and so
# does berthd's user socket. A munged that is already running (the system's) is reused and
# never stopped by `down`; one started here runs as user munge and is tracked by a pid file.

MUNGE_PIDFILE="$RUN_DIR/munged.pid"
MUNGE_LOG="$LOG_DIR/munged.log"
MUNGE_SOCKET=/run/munge/munge.socket.2
MUNGE_MARKER=munged

munge_works() { munge -n -s berth-sandbox 2>/dev/null | unmunge >/dev/null 2>&1; }

munge_up() {
  if is_running "$MUNGE_PIDFILE" "$MUNGE_MARKER"; then
    return 0
  fi
  if munge_works; then
    say "munge: reusing the munged already running on $MUNGE_SOCKET"
    rm -f "$MUNGE_PIDFILE"
    return 0
  fi
  getent passwd munge >/dev/null || die "user 'munge' does not exist; reinstall the munge package (scripts/install-deps.sh)"
  if [ ! -s /etc/munge/munge.key ]; then
    say "munge: creating /etc/munge/munge.key"
    mungekey --create --keyfile=/etc/munge/munge.key || die "mungekey could not create /etc/munge/munge.key"
  fi
  chown munge:munge /etc/munge/munge.key && chmod 0400 /etc/munge/munge.key
  install -d -o munge -g munge -m 0755 /run/munge
  install -d -o munge -g munge -m 0700 /var/lib/munge /var/log/munge
  # munged refuses a log file that others can write; it must be owned by munge
  touch "$MUNGE_LOG" && chown munge:munge "$MUNGE_LOG" && chmod 0640 "$MUNGE_LOG"
  # a munged killed hard leaves its socket lock behind; it is safe to remove once nothing answers
  rm -f "$MUNGE_SOCKET" "$MUNGE_SOCKET.lock"
  start_bg "$MUNGE_PIDFILE" "$MUNGE_LOG" \
    setpriv --reuid=munge --regid=munge --init-groups /usr/sbin/munged --foreground --log-file="$MUNGE_LOG"
  if ! wait_for 10 munge munge_works; then
    log_tail "$MUNGE_LOG" >&2
    die "munged did not answer within 10 s (log: $MUNGE_LOG)"
  fi
  say "munge: started munged (pid $(cat "$MUNGE_PIDFILE"))"
}

munge_down() { stop_pid "$MUNGE_PIDFILE" "$MUNGE_MARKER" munged 10; }

munge_running() { is_running "$MUNGE_PIDFILE" "$MUNGE_MARKER" || munge_works; }
