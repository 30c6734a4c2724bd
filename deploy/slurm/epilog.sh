#!/bin/bash
# GPU Ledger Slurm epilog: removes what prolog.sh recorded for the ending job. It looks through
# the directories rather than trusting the job's GPU list, so nothing of the job is left behind.
# Install: set Epilog=/etc/slurm/gpuledger-epilog.sh in slurm.conf (or call it from your epilog);
# it always exits 0, since a failing epilog drains the node. Keep the directories as in prolog.sh.
PATH=/usr/sbin:/usr/bin:/sbin:/bin
GPUSTAT_DIR=${GPULEDGER_GPUSTAT_DIR-/run/gpustat}
HPC_JOB_MAPPING_DIR=${GPULEDGER_HPC_JOB_MAPPING_DIR-}

job=${SLURM_JOB_ID:-}
[[ $job =~ ^[0-9]+$ ]] || exit 0

replace() {  # replace FILE with standard input, atomically (readers never see half a file)
  local tmp
  tmp=$(mktemp "${1%/*}/.${1##*/}.XXXXXX") || return 1
  if cat >"$tmp" && chmod 644 "$tmp" && mv -f "$tmp" "$1"; then
    return 0
  fi
  rm -f "$tmp"
  return 1
}

if [[ -n $GPUSTAT_DIR && -d $GPUSTAT_DIR ]]; then
  for file in "$GPUSTAT_DIR"/*; do
    [[ -f $file ]] || continue
    read -r holder _ <"$file"
    # Only this job's files: a GPU may already have been handed to the next job.
    [[ ${holder:-} == "$job" ]] && rm -f "$file"
  done
fi
if [[ -n $HPC_JOB_MAPPING_DIR && -d $HPC_JOB_MAPPING_DIR ]]; then
  exec 9>"$HPC_JOB_MAPPING_DIR/.lock" && flock -w 10 9
  for file in "$HPC_JOB_MAPPING_DIR"/*; do
    [[ -f $file ]] || continue
    grep -qxF -- "$job" "$file" || continue
    if grep -qvxF -- "$job" "$file"; then
      grep -vxF -- "$job" "$file" | replace "$file" # other jobs still share this GPU
    else
      rm -f "$file"
    fi
  done
fi
exit 0
