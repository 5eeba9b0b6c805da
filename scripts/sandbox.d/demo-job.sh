#!/bin/sh
#SBATCH --no-container-batch
# The sandbox demo job (scripts/sandbox demo): one task per node in the job's container, first
# through berthd (berth exec), then launched natively by the SPANK plugin (srun naming the
# job's image: the tasks join the job's container; nothing runs per task but the task). The
# script itself runs on the host (--no-container-batch), where srun is.
# shellcheck disable=SC2016  # the single-quoted text is expanded inside the container
srun berth exec -- sh -c 'echo "berth exec: node=$SLURMD_NODENAME uid=$(id -u) user=$(whoami) image says: $(cat /etc/berth-demo-release)"'
srun --container-image="$SLURM_SPANK_BERTH_CONTAINER_IMAGE" sh -c 'echo "native:     node=$SLURMD_NODENAME uid=$(id -u) user=$(whoami) image says: $(cat /etc/berth-demo-release)"'
