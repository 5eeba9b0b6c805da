# berthd in a container (docker-compose.yml, profile "agent"). Build after `npm run build`:
# the image carries the bundles, not the sources. berth-init stays on the host
# (/usr/local/lib/berth/berth-init, installed by scripts/install.sh) because dockerd
# bind-mounts it into job containers from the host's file system.
FROM node:20-bookworm-slim
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends munge slurm-client libnss-sss \
 && rm -rf /var/lib/apt/lists/*
COPY dist/ /opt/berth/
ENTRYPOINT ["node", "/opt/berth/berthd.js"]
