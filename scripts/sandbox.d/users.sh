# Demo users for the sandbox (sourced by scripts/sandbox): alice (uid 2001, also in group
# berth-demo, gid 2100) and bob (uid 2002), each with a home directory and a group of its own.

DEMO_GROUP=berth-demo
DEMO_GROUP_GID=2100

# ensure_user NAME UID: creates NAME with uid=gid=UID, or checks an existing one
ensure_user() {
  local name="$1" uid="$2" have
  if have="$(getent passwd "$name")"; then
    [ "$(cut -d: -f3 <<<"$have")" = "$uid" ] \
      || die "user $name exists with uid $(cut -d: -f3 <<<"$have"), the sandbox needs uid $uid; remove or renumber that user"
  else
    if ! getent group "$name" >/dev/null; then
      getent group "$uid" >/dev/null && die "gid $uid is taken by group $(getent group "$uid" | cut -d: -f1); the sandbox needs it for group $name"
      groupadd -g "$uid" "$name"
    fi
    getent passwd "$uid" >/dev/null && die "uid $uid is taken by user $(getent passwd "$uid" | cut -d: -f1); the sandbox needs it for $name"
    useradd -m -u "$uid" -g "$name" -s /bin/bash "$name"
    say "users: created $name (uid $uid)"
  fi
  local home
  home="$(getent passwd "$name" | cut -d: -f6)"
  [ -d "$home" ] || install -d -o "$name" -g "$(id -g "$name")" -m 0755 "$home"
}

users_up() {
  if ! getent group "$DEMO_GROUP" >/dev/null; then
    getent group "$DEMO_GROUP_GID" >/dev/null && die "gid $DEMO_GROUP_GID is taken by group $(getent group "$DEMO_GROUP_GID" | cut -d: -f1); the sandbox needs it for $DEMO_GROUP"
    groupadd -g "$DEMO_GROUP_GID" "$DEMO_GROUP"
  fi
  ensure_user alice 2001
  ensure_user bob 2002
  id -nG alice | tr ' ' '\n' | grep -qx "$DEMO_GROUP" || usermod -a -G "$DEMO_GROUP" alice
}
