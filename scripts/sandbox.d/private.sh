# A registry that needs credentials (sourced by scripts/sandbox): the distribution registry
# on 127.0.0.1:5002 with htpasswd (bcrypt) logins for alice, bob and "site", holding
# 127.0.0.1:5002/berth/private:1.0 (the demo files plus /etc/berth-private-release). The
# logins are sandbox-only secrets kept in $PRIVATE_LOGINS (root, 0600) for the tests, which
# write users' ~/.docker/config.json and a site credentials file from them.

PRIVATE_ADDR=127.0.0.1:5002
PRIVATE_DIR="$STATE_DIR/private-registry"
PRIVATE_PIDFILE="$RUN_DIR/private-registry.pid"
PRIVATE_LOG="$LOG_DIR/private-registry.log"
PRIVATE_MARKER="serve $PRIVATE_DIR/config.yml"
PRIVATE_LOGINS="$PRIVATE_DIR/logins.json"
PRIVATE_IMAGE="$PRIVATE_ADDR/berth/private:1.0"
PRIVATE_USERS=(alice bob site)

private_secret() { printf '%s-sandbox-%s' "$1" "$(cat "$PRIVATE_DIR/salt")"; }

private_logins_up() {
  install -d -m 0700 "$PRIVATE_DIR"
  [ -s "$PRIVATE_DIR/salt" ] || (umask 077 && od -An -N8 -tx1 /dev/urandom | tr -d ' \n' >"$PRIVATE_DIR/salt")
  command -v htpasswd >/dev/null || die "htpasswd not found; install apache2-utils (scripts/install-deps.sh)"
  local u first=1
  : >"$PRIVATE_DIR/htpasswd.tmp"
  (umask 077 && printf '{' >"$PRIVATE_LOGINS.tmp")
  for u in "${PRIVATE_USERS[@]}"; do
    htpasswd -Bbn "$u" "$(private_secret "$u")" | head -1 >>"$PRIVATE_DIR/htpasswd.tmp"
    [ -n "$first" ] || printf ',' >>"$PRIVATE_LOGINS.tmp"
    first=""
    printf '"%s":"%s"' "$u" "$(private_secret "$u")" >>"$PRIVATE_LOGINS.tmp"
  done
  printf '}\n' >>"$PRIVATE_LOGINS.tmp"
  chmod 0644 "$PRIVATE_DIR/htpasswd.tmp"
  mv -f "$PRIVATE_DIR/htpasswd.tmp" "$PRIVATE_DIR/htpasswd"
  mv -f "$PRIVATE_LOGINS.tmp" "$PRIVATE_LOGINS"
}

private_image_present() {
  probe http "http://site:$(private_secret site)@$PRIVATE_ADDR/v2/berth/private/manifests/1.0"
}

private_image_up() {
  private_image_present && return 0
  local dir host cfg
  host="unix://$(docker_sock n1)"
  dir="$(mktemp -d /tmp/berth-private-rootfs.XXXXXX)"
  cfg="$(mktemp -d /tmp/berth-private-login.XXXXXX)"
  demo_rootfs "$dir"
  echo "berth private image 1.0" >"$dir/etc/berth-private-release"
  chmod 0644 "$dir/etc/berth-private-release"
  tar -C "$dir" -c . | docker -H "$host" import - "$PRIVATE_IMAGE" >/dev/null \
    || { rm -rf "$dir" "$cfg"; die "docker import of the private image on n1 failed (log: $(docker_log n1))"; }
  rm -rf "$dir"
  private_secret site | docker --config "$cfg" -H "$host" login -u site --password-stdin "$PRIVATE_ADDR" >/dev/null 2>&1 \
    || { rm -rf "$cfg"; die "docker login to the private registry failed (log: $PRIVATE_LOG)"; }
  docker --config "$cfg" -H "$host" push "$PRIVATE_IMAGE" >/dev/null \
    || { rm -rf "$cfg"; die "pushing $PRIVATE_IMAGE failed (logs: $PRIVATE_LOG, $(docker_log n1))"; }
  rm -rf "$cfg"
  docker -H "$host" rmi "$PRIVATE_IMAGE" >/dev/null \
    || die "could not remove $PRIVATE_IMAGE from n1's engine after pushing it"
  private_image_present || die "$PRIVATE_IMAGE was pushed but the registry does not list it (log: $PRIVATE_LOG)"
  say "private: built and pushed $PRIVATE_IMAGE"
}

private_up() {
  private_logins_up
  serve_registry private-registry "$PRIVATE_ADDR" "$PRIVATE_DIR" "$PRIVATE_PIDFILE" "$PRIVATE_LOG" \
    "$(printf 'auth:\n  htpasswd:\n    realm: berth-sandbox-private\n    path: %s\n' "$PRIVATE_DIR/htpasswd")"$'\n' \
    "http://site:$(private_secret site)@$PRIVATE_ADDR/v2/"
  say "private: docker-registry with htpasswd logins running (pid $(cat "$PRIVATE_PIDFILE"), $PRIVATE_ADDR)"
  private_image_up
}

private_down() { stop_pid "$PRIVATE_PIDFILE" "$PRIVATE_MARKER" "private registry" 10; }

private_running() { is_running "$PRIVATE_PIDFILE" "$PRIVATE_MARKER"; }
