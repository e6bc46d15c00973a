#!/bin/bash
# (issue 19) copy of the monitor used for docs/cr.md section 6: run from the repository root, nohup, kill by its pid
# records CPU time (s) of each CR training process every 20 s: pid name cputime_s
while true; do
  for p in $(pgrep -f "facesr train configs/cr_rlfn"); do
    n=$(tr '\0' ' ' < /proc/$p/cmdline | grep -o "run.name=[^ ]*" | head -1)
    t=$(awk '{print ($14+$15)/100}' /proc/$p/stat 2>/dev/null)
    [ -n "$t" ] && echo "$(date +%s) $p ${n:-cr_rlfn_a} $t"
  done >> workspace/logs_cr/cpu_times.txt
  sleep 20
done
