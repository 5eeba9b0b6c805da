# Fake accelerators and HCAs for the sandbox (sourced by scripts/sandbox). This machine has no
# GPU and no InfiniBand, so their device nodes are made with mknod: a device node exists without
# its driver, so it can be listed, bind-mounted, allowed or denied by a devices cgroup and
# named in gres.conf, but opening one fails (ENXIO). Everything berth and Slurm do with devices
# is about those nodes, never about the driver behind them; docs/operations.md ("GPUs") says
# which parts are proven only with these fakes.
#
#   n1: NVIDIA GPUs /dev/nvidia0, /dev/nvidia1 and two HCAs /dev/infiniband/uverbs0, uverbs1
#   n2: NVIDIA GPUs /dev/nvidia2, /dev/nvidia3 and one HCA uverbs2
#   n3: AMD GPUs /dev/dri/renderD128, renderD129 (cards card0, card1, /dev/kfd) and one HCA uverbs3
# plus the devices every NVIDIA or RDMA node has: nvidiactl, nvidia-modeset, nvidia-uvm,
# nvidia-uvm-tools, infiniband/rdma_cm. Majors: NVIDIA's 195 and DRM's 226 as the kernel
# assigns them, uverbs 231; nvidia-uvm, kfd and rdma_cm get dynamic majors on real nodes, here
# fixed unused ones.

GRES_CONF=/etc/slurm/gres.conf
FAKE_UVM_MAJOR=511
FAKE_KFD_MAJOR=510

# the GPUs of each node in Slurm's order (gres.conf's File=)
gpu_files() {
  case "$1" in
    n1) echo '/dev/nvidia[0-1]' ;;
    n2) echo '/dev/nvidia[2-3]' ;;
    n3) echo '/dev/dri/renderD[128-129]' ;;
  esac
}

# the RDMA devices of each node (berthd's rdmaDevices)
rdma_files() {
  case "$1" in
    n1) echo /dev/infiniband/uverbs0 /dev/infiniband/uverbs1 /dev/infiniband/rdma_cm ;;
    n2) echo /dev/infiniband/uverbs2 /dev/infiniband/rdma_cm ;;
    n3) echo /dev/infiniband/uverbs3 /dev/infiniband/rdma_cm ;;
  esac
}

# the GPU driver's files berthd mounts into GPU jobs' containers (berthd's gpuHostFiles): a
# stand-in nvidia-smi and libcuda here, the driver's real ones on a site without the NVIDIA
# Container Toolkit
FAKE_DRIVER_DIR=/opt/berth-sandbox-gpu
gpu_host_files() {
  case "$1" in
    n1 | n2) echo "$FAKE_DRIVER_DIR/nvidia" ;;
    n3) echo "$FAKE_DRIVER_DIR/rocm" ;;
  esac
}

fake_driver_files() {
  local vendor tool
  for vendor in nvidia rocm; do
    tool=nvidia-smi
    [ "$vendor" = rocm ] && tool=rocm-smi
    install -d -m 0755 "$FAKE_DRIVER_DIR/$vendor/bin" "$FAKE_DRIVER_DIR/$vendor/lib"
    {
      echo '#!/bin/sh'
      echo "# berth sandbox: a stand-in for the driver's $tool (no GPU on this machine)"
      echo "echo \"fake $tool: CUDA_VISIBLE_DEVICES=\${CUDA_VISIBLE_DEVICES:-} ROCR_VISIBLE_DEVICES=\${ROCR_VISIBLE_DEVICES:-}\""
      echo 'ls -1 /dev/nvidia[0-9]* /dev/dri/renderD* 2>/dev/null'
    } >"$FAKE_DRIVER_DIR/$vendor/bin/$tool.tmp"
    chmod 0755 "$FAKE_DRIVER_DIR/$vendor/bin/$tool.tmp"
    mv -f "$FAKE_DRIVER_DIR/$vendor/bin/$tool.tmp" "$FAKE_DRIVER_DIR/$vendor/bin/$tool"
    echo "berth sandbox stand-in for the $vendor driver library" >"$FAKE_DRIVER_DIR/$vendor/lib/README"
  done
}

# mknod unless a character device of that number is there already
fake_dev() {
  local file="$1" major="$2" minor="$3"
  if [ -c "$file" ] && [ "$(stat -c '%t:%T' "$file")" = "$(printf '%x:%x' "$major" "$minor")" ]; then
    return 0
  fi
  install -d -m 0755 "$(dirname "$file")"
  rm -f "$file"
  mknod -m 0666 "$file" c "$major" "$minor"
}

devices_up() {
  local i
  for i in 0 1 2 3; do fake_dev "/dev/nvidia$i" 195 "$i"; done
  fake_dev /dev/nvidiactl 195 255
  fake_dev /dev/nvidia-modeset 195 254
  fake_dev /dev/nvidia-uvm "$FAKE_UVM_MAJOR" 0
  fake_dev /dev/nvidia-uvm-tools "$FAKE_UVM_MAJOR" 1
  fake_dev /dev/kfd "$FAKE_KFD_MAJOR" 0
  for i in 0 1; do
    fake_dev "/dev/dri/card$i" 226 "$i"
    fake_dev "/dev/dri/renderD$((128 + i))" 226 "$((128 + i))"
  done
  for i in 0 1 2 3; do fake_dev "/dev/infiniband/uverbs$i" 231 "$((192 + i))"; done
  fake_dev /dev/infiniband/rdma_cm 10 250
  fake_driver_files
}

gres_conf_text() {
  local n
  echo "$SLURM_CONF_MARK: two fake GPUs per node (scripts/sandbox.d/devices.sh)."
  for n in "${NODES[@]}"; do
    printf 'NodeName=%s Name=gpu File=%s\n' "$n" "$(gpu_files "$n")"
  done
}
