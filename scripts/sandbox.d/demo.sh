# `scripts/sandbox demo` (sourced by scripts/sandbox): alice runs a 2-node job in the demo
# image and the output is printed; on failure, the relevant log tails are printed too.

demo_cmd() {
  status_all_running || die "the sandbox is not (fully) up; run 'scripts/sandbox up' (see 'scripts/sandbox status')"
  local home dir out rc=0 n
  home="$(getent passwd alice | cut -d: -f6)"
  dir="$home/berth-demo"
  install -d -o alice -g alice -m 0755 "$dir"
  install -o alice -g alice -m 0755 "$SANDBOX_D/demo-job.sh" "$dir/job.sh"
  out="$dir/demo-$(date +%Y%m%d-%H%M%S).out"
  say "demo: as alice: sbatch -N2 --wait --container-image=$DEMO_IMAGE -o $out job.sh"
  (cd "$dir" && runuser -u alice -- sbatch -N2 --wait --container-image="$DEMO_IMAGE" -o "$out" job.sh) || rc=$?
  echo "--- job output ($out):"
  if [ -f "$out" ]; then cat "$out"; else echo "(no output file)"; fi
  local good
  good="$(grep -c "image says: $DEMO_RELEASE_TEXT\$" "$out" 2>/dev/null || true)"
  if [ "$rc" -eq 0 ] && [ "${good:-0}" -ne 4 ]; then
    echo "--- the job exited 0 but ${good:-0} of 4 tasks (2 steps on 2 nodes) printed the image's marker" >&2
    rc=1
  fi
  if [ "$rc" -ne 0 ]; then
    echo "--- the job failed (sbatch exit $rc); log tails follow" >&2
    log_tail "$SLURMCTLD_LOG" 15 >&2
    for n in "${NODES[@]}"; do
      log_tail "$(slurmd_log "$n")" 10 >&2
      log_tail "$(berthd_log "$n")" 10 >&2
      log_tail "$(berthd_out "$n")" 5 >&2
    done
    die "demo job failed (exit $rc)"
  fi
  say "demo: job succeeded"
}
