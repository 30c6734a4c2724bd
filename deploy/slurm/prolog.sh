#!/bin/bash
# GPU Ledger Slurm prolog: records which job holds each of this node's GPUs, so that the agent
# names the holder of a GPU that runs no process. epilog.sh removes the records.
# Install: copy to the compute nodes and set Prolog=/etc/slurm/gpuledger-prolog.sh in slurm.conf
# (or call it from the prolog you have); it always exits 0, since a failing prolog drains the node.
#
# For each GPU of the job (SLURM_JOB_GPUS, physical indices; MIG UUIDs from CUDA_VISIBLE_DEVICES,
# which in the prolog names the node's devices, not the job's cgroup view) it writes:
#   $GPUSTAT_DIR/<index or MIG UUID>  "<job id> <uid> <user> <account>" ("-" for unknown); the first
#                                     two fields are Princeton jobstats' /run/gpustat format
#   $HPC_JOB_MAPPING_DIR/<index>      the job id as a line (dcgm-exporter's --hpc-job-mapping-dir:
#                                     one job id per line); only when HPC_JOB_MAPPING_DIR is set
# Slurm runs prologs without PATH and with the job's variables only: edit the defaults here.
PATH=/usr/sbin:/usr/bin:/sbin:/bin
GPUSTAT_DIR=${GPULEDGER_GPUSTAT_DIR-/run/gpustat}
HPC_JOB_MAPPING_DIR=${GPULEDGER_HPC_JOB_MAPPING_DIR-}

job=${SLURM_JOB_ID:-}
[[ $job =~ ^[0-9]+$ ]] || exit 0

word() {  # a value as one field: "-" when empty, blanks replaced
  local v=${1:-}
  v=${v//[[:space:]]/_}
  printf '%s' "${v:--}"
}

devices() {  # "0-2,6" -> 0 1 2 6, one per line; only names that are safe as file names
  local item i
  local -a items
  IFS=, read -ra items <<<"$1"
  for item in "${items[@]}"; do
    if [[ $item =~ ^([0-9]+)-([0-9]+)$ ]]; then
      for ((i = BASH_REMATCH[1]; i <= BASH_REMATCH[2]; i++)); do echo "$i"; done
    elif [[ $item =~ ^([0-9]+|MIG-[A-Za-z0-9-]+)$ ]]; then
      echo "$item"
    fi
  done
}

replace() {  # replace FILE with standard input, atomically (readers never see half a file)
  local tmp
  tmp=$(mktemp "${1%/*}/.${1##*/}.XXXXXX") || return 1
  if cat >"$tmp" && chmod 644 "$tmp" && mv -f "$tmp" "$1"; then
    return 0
  fi
  rm -f "$tmp"
  return 1
}

gpus=${SLURM_JOB_GPUS:-${CUDA_VISIBLE_DEVICES:-}}
case ${CUDA_VISIBLE_DEVICES:-} in *MIG-*) gpus=$CUDA_VISIBLE_DEVICES ;; esac
mapfile -t ids < <(devices "$gpus")
[[ ${#ids[@]} -gt 0 ]] || exit 0

line="$job $(word "${SLURM_JOB_UID:-}") $(word "${SLURM_JOB_USER:-}") $(word "${SLURM_JOB_ACCOUNT:-}")"
if [[ -n $GPUSTAT_DIR ]] && mkdir -p "$GPUSTAT_DIR"; then
  for id in "${ids[@]}"; do
    echo "$line" | replace "$GPUSTAT_DIR/$id"
  done
fi
if [[ -n $HPC_JOB_MAPPING_DIR ]] && mkdir -p "$HPC_JOB_MAPPING_DIR"; then
  exec 9>"$HPC_JOB_MAPPING_DIR/.lock" && flock -w 10 9
  for id in "${ids[@]}"; do
    [[ $id =~ ^[0-9]+$ ]] || continue # dcgm-exporter names MIG instances <gpu>.<gi>, not by UUID
    file=$HPC_JOB_MAPPING_DIR/$id
    # Jobs sharing a GPU: one line each, the earliest first.
    { [[ -f $file ]] && grep -vxF -- "$job" "$file"; echo "$job"; } | replace "$file"
  done
fi
exit 0
