#!/bin/sh
# The sandbox demo job (scripts/sandbox demo): one task per node, each in the job's container.
# shellcheck disable=SC2016  # the single-quoted text is expanded inside the container
srun berth exec -- sh -c 'echo "$(hostname) node=$SLURMD_NODENAME uid=$(id -u) user=$(whoami) image says: $(cat /etc/berth-demo-release)"'
