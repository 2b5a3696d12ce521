#!/usr/bin/env bash
# Stops the single-node SLURM of scripts/slurm-up.sh: every daemon by the pid in its pid file,
# in the reverse order of start-up. The state under $SLURM_STATE stays for the next slurm-up.sh.
set -uo pipefail
STATE=${SLURM_STATE:-/tmp/jstyleid-slurm}

for daemon in slurmd slurmctld slurmdbd mariadbd munged; do
  pidfile=$STATE/$daemon.pid
  [ -f "$pidfile" ] || continue
  pid=$(cat "$pidfile")
  if kill "$pid" 2>/dev/null; then
    for _ in $(seq 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    kill -0 "$pid" 2>/dev/null && { echo "slurm-down: $daemon ($pid) ignored SIGTERM, sending SIGKILL" >&2; kill -9 "$pid"; }
  fi
  rm -f "$pidfile"
done
for conf in slurm.conf gres.conf; do
  [ "$(readlink "/etc/slurm/$conf")" = "$STATE/etc/$conf" ] && rm -f "/etc/slurm/$conf"
done
echo "slurm-down: stopped; state kept in $STATE" >&2
