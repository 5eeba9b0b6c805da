# One berthd per sandbox node (sourced by scripts/sandbox), each talking to its node's dockerd
# and listening on /run/berth/<node>/admin.sock and user.sock.

berthd_config() { echo "$STATE_DIR/$1/berthd.json"; }
berthd_pidfile() { echo "$RUN_DIR/$1/berthd.pid"; }
berthd_out() { echo "$LOG_DIR/$1/berthd.out"; }
berthd_log() { echo "$LOG_DIR/$1/berthd.log"; }
berthd_accounting() { echo "$LOG_DIR/$1/accounting.jsonl"; }
berthd_admin_sock() { echo "$BERTH_RUN_DIR/$1/admin.sock"; }
berthd_user_sock() { echo "$BERTH_RUN_DIR/$1/user.sock"; }
berthd_marker() { echo "--config $(berthd_config "$1")"; }
berthd_audit() { echo "$LOG_DIR/$1/authz-audit.jsonl"; }
# the site rules every berthd and every `berth submit-check` read (one file on this one machine,
# as config management keeps one file the same on every node of a real cluster)
BERTH_SITE_RULES=/etc/berth/site.json
berthd_authz_sock() { echo "$BERTH_RUN_DIR/$1/authz.sock"; }
# dockerd's TLS files, written by berthd from its node CA before dockerd starts
berthd_tls_dir() { echo "$STATE_DIR/$1/berthd/tls"; }
# where each node's dockerd listens with --tlsverify for job users: n1 2376, n2 2377, n3 2378
berthd_docker_tls_port() { echo $((2375 + ${1#n})); }
# each node's Prometheus endpoint (GET /metrics): n1 9462, n2 9463, n3 9464
berthd_metrics_port() { echo $((9461 + ${1#n})); }

# remote access (mutual TLS) for admins: a sandbox site CA, a server certificate per node for
# berthd's TCP listener (n1 7441, n2 7442, n3 7443, loopback only) and two client identities:
# sandbox-admin (role admin) and sandbox-read (role read)
berthd_site_ca_dir() { echo "$STATE_DIR/site-ca"; }
berthd_remote_port() { echo $((7440 + ${1#n})); }

berthd_site_ca() {
  local d c
  d="$(berthd_site_ca_dir)"
  install -d -m 0700 "$d"
  if [ ! -s "$d/ca.pem" ]; then
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$d/ca.key" -out "$d/ca.pem" \
      -days 3650 -subj "/CN=berth sandbox site CA" 2>/dev/null || die "openssl could not make the sandbox site CA in $d"
  fi
  berthd_site_cert() { # NAME CN EXT
    [ -s "$d/$1.pem" ] && return 0
    printf '%b' "$3" >"$d/$1.ext"
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$d/$1.key" -out "$d/$1.csr" -subj "/CN=$2" 2>/dev/null \
      && openssl x509 -req -in "$d/$1.csr" -CA "$d/ca.pem" -CAkey "$d/ca.key" -CAcreateserial -out "$d/$1.pem" -days 3650 -extfile "$d/$1.ext" 2>/dev/null \
      || die "openssl could not issue $1 from the sandbox site CA in $d"
  }
  for c in "${NODES[@]}"; do berthd_site_cert "server-$c" "$c" 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n'; done
  berthd_site_cert admin sandbox-admin 'extendedKeyUsage=clientAuth\n'
  berthd_site_cert read sandbox-read 'extendedKeyUsage=clientAuth\n'
}

# what a running berthd was started from: its code (the install manifest names every hashed
# chunk) and its config; `up` restarts a berthd whose stamp no longer matches
berthd_stamp() {
  # gres.conf too: berthd reads the node's GPU files from it once, at start
  cat "$BERTH_LIB/berthd.js" "$BERTH_LIB/.dist-manifest" "$(berthd_config "$1")" "$BERTH_SITE_RULES" "$GRES_CONF" 2>/dev/null | sha256sum | cut -d' ' -f1
}

# the shipped example's rules, with the sandbox's own directories protected and its registries
# (the pull address and the private one) the only ones jobs may use; --container-save pushes
# to the private one, each user under their own name
berthd_write_site_rules() {
  local f="$BERTH_SITE_RULES"
  install -d -m 0755 "$(dirname "$f")"
  cat >"$f.tmp" <<JSON
{
  "mounts": [],
  "containerDefaults": { "mountHome": true, "readOnly": false },
  "userMounts": {
    "enabled": true,
    "deniedPrefixes": ["/proc", "/sys", "/dev", "/run", "/boot", "/etc", "/root", "/var/lib", "/var/spool", "/var/log"]
  },
  "protectedPaths": ["$BERTH_RUN_DIR", "$RUN_DIR", "$STATE_DIR", "$BERTH_LIB", "/var/run/docker.sock", "/var/lib/docker"],
  "registries": ["$REGISTRY_ADDR", "$PRIVATE_ADDR"],
  "containerSave": { "repositories": ["$PRIVATE_ADDR/{user}/*"] }
}
JSON
  chmod 0644 "$f.tmp"
  mv -f "$f.tmp" "$f"
}

berthd_write_config() {
  local n="$1" f
  f="$(berthd_config "$n")"
  install -d -m 0700 "$STATE_DIR/$n/berthd"
  cat >"$f.tmp" <<JSON
{
  "node": "$n",
  "runDir": "$BERTH_RUN_DIR",
  "stateDir": "$STATE_DIR/$n/berthd",
  "dockerHost": "unix://$(docker_sock "$n")",
  "initBinary": "$BERTH_LIB/berth-init",
  "accountingFile": "$(berthd_accounting "$n")",
  "logFile": "$(berthd_log "$n")",
  "logLevel": "info",
  "rdmaDevices": $(rdma_files "$n" | sed 's/[^ ]*/"&"/g; s/ /, /g; s/^/[/; s/$/]/'),
  "gpuHostFiles": ["$(gpu_host_files "$n")"],
  "siteRules": "$BERTH_SITE_RULES",
  "slurmdSpoolDir": "$STATE_DIR/$n/slurmd",
  "stopGraceSeconds": 5,$([ "$n" = "$DISKLESS_NODE" ] && printf '\n  "imageGc": { "budgetBytes": %s },' "$DISKLESS_BUDGET_BYTES")
  "remoteAccess": {
    "listen": "127.0.0.1:$(berthd_remote_port "$n")",
    "certFile": "$(berthd_site_ca_dir)/server-$n.pem",
    "keyFile": "$(berthd_site_ca_dir)/server-$n.key",
    "caFile": "$(berthd_site_ca_dir)/ca.pem",
    "clients": { "sandbox-admin": ["admin"], "sandbox-read": ["read"] }
  },
  "metrics": { "listen": "127.0.0.1:$(berthd_metrics_port "$n")" },
  "authz": {
    "pluginName": "berth-$n",
    "pluginSpecDir": "/etc/docker/plugins",
    "policyFile": "$BERTH_LIB/policies/hpc-default.json",
    "auditFile": "$(berthd_audit "$n")",
    "dockerTlsAddress": "127.0.0.1:$(berthd_docker_tls_port "$n")",
    "runtime": "berth"
  }
}
JSON
  chmod 0644 "$f.tmp"
  mv -f "$f.tmp" "$f"
}

berthd_up() {
  local n
  local started=()
  [ -x "$PREFIX/sbin/berthd" ] || die "$PREFIX/sbin/berthd is missing; run scripts/install.sh"
  berthd_site_ca
  berthd_write_site_rules
  # gres.conf before berthd starts (it reads it once); slurm_up restarts Slurm when it changed
  slurm_write_file "$GRES_CONF" "$(gres_conf_text)"
  for n in "${NODES[@]}"; do
    install -d -m 0755 "$LOG_DIR/$n" "$RUN_DIR/$n"
    berthd_write_config "$n"
    if is_running "$(berthd_pidfile "$n")" "$(berthd_marker "$n")"; then
      [ "$(berthd_stamp "$n")" != "$(cat "$RUN_DIR/$n/berthd.stamp" 2>/dev/null)" ] || continue
      say "berthd: the installed berthd or its config changed; restarting berthd $n"
      stop_pid "$(berthd_pidfile "$n")" "$(berthd_marker "$n")" "berthd $n" 15
    fi
    berthd_stamp "$n" >"$RUN_DIR/$n/berthd.stamp"
    # sockets left by a berthd that was killed hard would fool the readiness check below
    rm -f "$(berthd_admin_sock "$n")" "$(berthd_user_sock "$n")"
    start_bg "$(berthd_pidfile "$n")" "$(berthd_out "$n")" "$PREFIX/sbin/berthd" --config "$(berthd_config "$n")"
    started+=("$n")
  done
  for n in "${started[@]}"; do
    local i ok=""
    for ((i = 0; i < 100; i++)); do
      if probe connect "$(berthd_admin_sock "$n")"; then ok=1; break; fi
      is_running "$(berthd_pidfile "$n")" "$(berthd_marker "$n")" || break
      sleep 0.2
    done
    if [ -z "$ok" ]; then
      log_tail "$(berthd_out "$n")" >&2
      log_tail "$(berthd_log "$n")" >&2
      if is_running "$(berthd_pidfile "$n")" "$(berthd_marker "$n")"; then
        die "berthd $n runs but made no $(berthd_admin_sock "$n") within 20 s (logs: $(berthd_out "$n"), $(berthd_log "$n"))"
      fi
      die "berthd $n exited during start-up (logs: $(berthd_out "$n"), $(berthd_log "$n"))"
    fi
    wait_for 20 "berthd $n TLS files for dockerd" test -s "$(berthd_tls_dir "$n")/server-key.pem" \
      || die "berthd $n did not write dockerd's TLS files to $(berthd_tls_dir "$n") (log: $(berthd_log "$n"))"
    say "berthd: started berthd $n (pid $(cat "$(berthd_pidfile "$n")"), $(berthd_admin_sock "$n"))"
  done
}

berthd_down() {
  local n
  for n in "${NODES[@]}"; do
    stop_pid "$(berthd_pidfile "$n")" "$(berthd_marker "$n")" "berthd $n" 15
  done
}

berthd_running() { is_running "$(berthd_pidfile "$1")" "$(berthd_marker "$1")"; }
