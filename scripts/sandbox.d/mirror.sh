# A pull-through mirror of the sandbox registry (sourced by scripts/sandbox): the
# distribution registry in proxy mode on 127.0.0.1:5001, fetching from 127.0.0.1:5000 once
# and serving every node after that. Nodes use it when their berthd config lists it under
# `mirrors`; the sandbox's own berthds pull directly, and the tests configure mirrors
# themselves. Its log has one access-log line per request, like the registry's.

MIRROR_ADDR=127.0.0.1:5001
MIRROR_DIR="$STATE_DIR/mirror"
MIRROR_PIDFILE="$RUN_DIR/mirror.pid"
MIRROR_LOG="$LOG_DIR/mirror.log"
MIRROR_MARKER="serve $MIRROR_DIR/config.yml"

mirror_up() {
  serve_registry mirror "$MIRROR_ADDR" "$MIRROR_DIR" "$MIRROR_PIDFILE" "$MIRROR_LOG" \
    "$(printf 'proxy:\n  remoteurl: http://%s\n' "$REGISTRY_ADDR")"$'\n'
  say "mirror: docker-registry in proxy mode running (pid $(cat "$MIRROR_PIDFILE"), $MIRROR_ADDR → $REGISTRY_ADDR)"
}

mirror_down() { stop_pid "$MIRROR_PIDFILE" "$MIRROR_MARKER" "mirror registry" 10; }

mirror_running() { is_running "$MIRROR_PIDFILE" "$MIRROR_MARKER"; }
