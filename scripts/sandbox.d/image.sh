# The demo image 127.0.0.1:5000/berth/demo:1.0 (sourced by scripts/sandbox): busybox-static
# plus a marker file, imported on n1, pushed to the sandbox registry as the site does (through
# the push address, with the site login), then removed from n1 so every node gets it by pulling
# through berth. Skipped when the registry already has it, so its digest stays stable across
# `up` runs.

DEMO_APPLETS=(sh ls id cat sleep echo env hostname true false pwd whoami wc grep head tail touch mkdir rm printf)
DEMO_RELEASE_TEXT="berth demo image 1.0"

demo_image_in_registry() {
  local repo="${DEMO_IMAGE#"$REGISTRY_ADDR"/}"
  probe http "http://$REGISTRY_ADDR/v2/${repo%:*}/manifests/${repo##*:}"
}

demo_rootfs() {
  local dir="$1" a
  [ -x /bin/busybox ] || die "/bin/busybox not found; install busybox-static (scripts/install-deps.sh)"
  mkdir -p "$dir/bin" "$dir/etc" "$dir/tmp" "$dir/root"
  cp /bin/busybox "$dir/bin/busybox"
  for a in "${DEMO_APPLETS[@]}"; do ln -sf busybox "$dir/bin/$a"; done
  echo "$DEMO_RELEASE_TEXT" >"$dir/etc/berth-demo-release"
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$dir/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' >"$dir/etc/group"
  chmod 1777 "$dir/tmp"
  chmod 0755 "$dir" "$dir/bin" "$dir/etc"
  chmod 0644 "$dir/etc/berth-demo-release" "$dir/etc/passwd" "$dir/etc/group"
}

image_up() {
  if demo_image_in_registry; then
    say "image: $DEMO_IMAGE already in the registry"
    return 0
  fi
  local dir host
  host="unix://$(docker_sock n1)"
  dir="$(mktemp -d /tmp/berth-demo-rootfs.XXXXXX)"
  demo_rootfs "$dir"
  tar -C "$dir" -c . | docker -H "$host" import - "$DEMO_IMAGE" >/dev/null \
    || { rm -rf "$dir"; die "docker import of the demo image on n1 failed (log: $(docker_log n1))"; }
  rm -rf "$dir"
  registry_push_as_site "$DEMO_IMAGE" \
    || die "pushing $DEMO_IMAGE through $REGISTRY_PUSH_ADDR failed (logs: $REGISTRY_FRONT_LOG, $REGISTRY_LOG, $(docker_log n1))"
  docker -H "$host" rmi "$DEMO_IMAGE" >/dev/null \
    || die "could not remove $DEMO_IMAGE from n1's engine after pushing it"
  demo_image_in_registry || die "$DEMO_IMAGE was pushed but the registry does not list it (log: $REGISTRY_LOG)"
  say "image: built and pushed $DEMO_IMAGE"
}
