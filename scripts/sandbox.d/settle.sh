# `scripts/sandbox settle` (sourced by scripts/sandbox): bring a running sandbox to a known
# quiet state before a test run: no job queued or running, no node drained or down, no
# container on any node's engine. A sandbox whose machine was stopped mid-job (a CI snapshot,
# a power cut) comes back with Slurm still holding those jobs; this cancels them and waits for
# berth's epilogs to remove their containers, and says what it found. It fails if containers
# are still there after the wait: berth should have removed them.

settle_cmd() {
  local wait_s=180 jobs n states left i
  jobs="$(squeue -h -o %A | paste -sd' ')"
  if [ -n "$jobs" ]; then
    say "settle: cancelling jobs left from an earlier run: $jobs"
    # shellcheck disable=SC2086
    scancel $jobs || warn "scancel $jobs failed"
  fi
  for ((i = 0; i < wait_s; i++)); do
    [ -z "$(squeue -h -o %A)" ] && break
    sleep 1
  done
  [ -z "$(squeue -h -o %A)" ] || die "settle: jobs still in the queue after ${wait_s} s: $(squeue -h -o '%A %T %N' | paste -sd';')"
  states="$(sinfo -h -N -o '%N %t' | sort -u)"
  while read -r n st; do
    case "$st" in
      drain* | drng | down* | fail*)
        say "settle: node $n is $st from an earlier run ($(sinfo -h -n "$n" -o '%E')); resuming it"
        scontrol update nodename="$n" state=resume || warn "could not resume $n"
        ;;
    esac
  done <<<"$states"
  for ((i = 0; i < wait_s; i++)); do
    left=""
    for n in "${NODES[@]}"; do
      [ -z "$(docker -H "unix://$(docker_sock "$n")" ps -aq)" ] || left="$left $n"
    done
    [ -z "$left" ] && break
    sleep 1
  done
  if [ -n "$left" ]; then
    for n in $left; do
      docker -H "unix://$(docker_sock "$n")" ps -a --format "{{.Names}} {{.Status}}" | sed "s/^/sandbox: settle: on $n: /" >&2
    done
    die "settle: containers still on$left ${wait_s} s after their jobs ended (berthd's log: $LOG_DIR/<node>/berthd.log)"
  fi
  say "settle: no job, no container, every node in service: $(sinfo -h -N -o '%N %t' | sort -u | paste -sd' ')"
}
