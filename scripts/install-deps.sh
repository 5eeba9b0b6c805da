#!/usr/bin/env bash
# Installs what berth needs to build and run on Debian 12 (as root), and the project's npm
# dependencies. Idempotent: apt is touched only when a package is missing, npm only when
# node_modules is missing or older than the lock file.
set -euo pipefail

die() { echo "install-deps: $*" >&2; exit 1; }

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PACKAGES=(docker.io docker-registry nginx busybox-static apache2-utils time openssl slurmctld slurmd slurmdbd slurm-client munge mariadb-server mariadb-client libslurm-dev gcc libc6-dev libnghttp2-dev libmunge-dev)

[ "$(id -u)" -eq 0 ] || die "must run as root (apt-get needs it); try: sudo $0"
command -v dpkg-query >/dev/null || die "dpkg-query not found: this script supports Debian 12 only"

missing=()
for p in "${PACKAGES[@]}"; do
  status="$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)"
  [ "$status" = "installed" ] || missing+=("$p")
done

if [ "${#missing[@]}" -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q || die "apt-get update failed; check the apt sources and the network"
  apt-get install -y -q --no-install-recommends "${missing[@]}" \
    || die "apt-get install ${missing[*]} failed (see above)"
else
  echo "install-deps: Debian packages present"
fi

command -v node >/dev/null || die "node not found: install Node.js 20 (>= 20.19) first"
command -v npm >/dev/null || die "npm not found: install Node.js 20 with npm first"

cd "$REPO"
stamp=node_modules/.package-lock.json   # npm writes it after every successful install
if [ -f package-lock.json ]; then
  if [ ! -f "$stamp" ] || [ package-lock.json -nt "$stamp" ] || [ package.json -nt "$stamp" ]; then
    echo "install-deps: npm ci"
    npm ci --no-audit --no-fund || die "npm ci failed (see above); is package-lock.json in sync with package.json?"
  else
    echo "install-deps: node_modules up to date"
  fi
else
  if [ ! -f "$stamp" ] || [ package.json -nt "$stamp" ]; then
    echo "install-deps: npm install (no package-lock.json)"
    npm install --no-audit --no-fund || die "npm install failed (see above)"
  else
    echo "install-deps: node_modules up to date"
  fi
fi
