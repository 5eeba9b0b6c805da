# A coalescing mirror tier in front of the sandbox registry (sourced by scripts/sandbox): nginx
# with scripts/examples/mirror-tier-nginx.conf (proxy_cache + proxy_cache_lock) on
# 127.0.0.1:5004, upstream 127.0.0.1:5000, its cache in $TIER_CACHE. Concurrent pulls of one
# uncached image through it cost the registry one fetch per blob (the proxy-mode mirror on 5001
# does not coalesce them). Like the mirror, nodes use it when their berthd config lists it
# under `mirrors`; the private registry (5002) is not behind it. Its log has one line per
# request with the cache's verdict (cache=MISS|HIT|BYPASS|-).

TIER_ADDR=127.0.0.1:5004
TIER_DIR="$STATE_DIR/mirror-tier"
TIER_CACHE="$TIER_DIR/cache"
TIER_CONFIG="$TIER_DIR/nginx.conf"
TIER_PIDFILE="$RUN_DIR/mirror-tier.pid"
TIER_LOG="$LOG_DIR/mirror-tier.log"
TIER_MARKER="-c $TIER_CONFIG"
TIER_USER=www-data
# the sandbox's disk is shared with three dockerds and the registries
TIER_MAX_SIZE=20g

tier_up() {
  local shipped="$REPO/scripts/examples/mirror-tier-nginx.conf" conf="$TIER_CONFIG" pid
  local globals="user $TIER_USER; pid $TIER_PIDFILE; daemon off;"
  command -v nginx >/dev/null || die "nginx not found; install it (scripts/install-deps.sh)"
  install -d -m 0755 "$TIER_DIR"
  install -d -m 0700 -o "$TIER_USER" "$TIER_CACHE"
  sed -e "s#proxy_cache_path /var/cache/berth-mirror-tier #proxy_cache_path $TIER_CACHE #" \
    -e "s#max_size=[0-9]*[kmg]#max_size=$TIER_MAX_SIZE#" "$shipped" >"$conf.new"
  grep -qF "proxy_cache_path $TIER_CACHE " "$conf.new" && grep -qF "listen $TIER_ADDR;" "$conf.new" \
    && grep -qF "server $REGISTRY_ADDR;" "$conf.new" \
    || die "$shipped no longer has proxy_cache_path /var/cache/berth-mirror-tier, listen $TIER_ADDR and server $REGISTRY_ADDR; update tier_up to match"
  nginx_config "mirror tier" "$shipped" "$conf.new" "$conf" "$globals" "$TIER_LOG" "$TIER_PIDFILE" "$TIER_MARKER" && return 0
  probe connect-tcp "$TIER_ADDR" && die "something else already listens on $TIER_ADDR (not the sandbox's mirror tier); stop it and rerun"
  start_bg "$TIER_PIDFILE" "$TIER_LOG" /usr/sbin/nginx -c "$conf" -g "$globals"
  wait_for 20 "mirror tier" probe http "http://$TIER_ADDR/v2/" \
    || { log_tail "$TIER_LOG" >&2; die "the mirror tier did not answer on http://$TIER_ADDR/v2/ within 20 s (log: $TIER_LOG)"; }
  say "mirror tier: nginx proxy_cache running (pid $(cat "$TIER_PIDFILE"), $TIER_ADDR → $REGISTRY_ADDR, cache $TIER_CACHE ≤ $TIER_MAX_SIZE)"
}

tier_down() { stop_pid "$TIER_PIDFILE" "$TIER_MARKER" "mirror tier (nginx)" 10; }

tier_running() { is_running "$TIER_PIDFILE" "$TIER_MARKER"; }
