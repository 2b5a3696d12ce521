#!/usr/bin/env bash
# Brings up a real single-node SLURM on this (Debian 12) machine, as root, without systemd:
# munge, MariaDB, slurmdbd, slurmctld and slurmd, each started by hand, with all state, logs and
# pid files under $SLURM_STATE (default /tmp/jstyleid-slurm). Installs the packages if missing.
# The node has one stand-in GPU of type `standin` (gres gpu, device file /dev/null), so that GPU
# requests (profiles/slurm-gpu) are scheduled and accounted as on a GPU cluster.
# Idempotent: a second call finds the daemons running and only waits for the node.
# Stop it with scripts/slurm-down.sh. Facts this relies on: ../shared/notes/slurm.md.
set -euo pipefail
STATE=${SLURM_STATE:-/tmp/jstyleid-slurm}
DB_PORT=${SLURM_DB_PORT:-3307}
PACKAGES="slurmctld slurmd slurm-client munge slurmdbd mariadb-server"

log() { echo "slurm-up: $*" >&2; }
running() { [ -f "$STATE/$1.pid" ] && kill -0 "$(cat "$STATE/$1.pid")" 2>/dev/null; }
wait_for() {  # wait_for WHAT SECONDS COMMAND...: poll until COMMAND succeeds
  local what=$1 seconds=$2; shift 2
  for _ in $(seq "$((seconds * 4))"); do "$@" >/dev/null 2>&1 && return 0; sleep 0.25; done
  log "$what did not come up in ${seconds} s; logs in $STATE"; exit 1
}

[ "$(id -u)" = 0 ] || { log "run as root"; exit 1; }
missing=$(for p in $PACKAGES; do dpkg -s "$p" >/dev/null 2>&1 || echo "$p"; done)
if [ -n "$missing" ]; then
  log "installing" $missing
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi
mkdir -p "$STATE"/{munge,mysql,spool/ctld,spool/d,etc}

# munge: its own key and socket; the socket's folder must be 0755.
MUNGE_SOCKET=$STATE/munge/munge.socket
chmod 0755 "$STATE" "$STATE/munge"
[ -f "$STATE/munge/munge.key" ] || { head -c 1024 /dev/urandom > "$STATE/munge/munge.key"; chmod 0400 "$STATE/munge/munge.key"; }
running munged || munged --force --key-file="$STATE/munge/munge.key" --socket="$MUNGE_SOCKET" \
  --pid-file="$STATE/munged.pid" --log-file="$STATE/munged.log" --seed-file="$STATE/munge/munge.seed"
wait_for munged 10 munge --socket="$MUNGE_SOCKET" -n

# MariaDB on 127.0.0.1:$DB_PORT, with a `slurm` user for slurmdbd.
DB_SOCKET=$STATE/mysql.sock
[ -d "$STATE/mysql/mysql" ] || mariadb-install-db --user=root --datadir="$STATE/mysql" >"$STATE/mariadb-install.log" 2>&1
if ! running mariadbd; then
  mariadbd --user=root --datadir="$STATE/mysql" --socket="$DB_SOCKET" --port="$DB_PORT" \
    --bind-address=127.0.0.1 --pid-file="$STATE/mariadbd.pid" --log-error="$STATE/mariadbd.log" \
    </dev/null >/dev/null 2>&1 &
fi
wait_for mariadbd 30 mariadb --socket="$DB_SOCKET" -u root -e "SELECT 1"
[ -f "$STATE/db.pass" ] || { head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$STATE/db.pass"; chmod 600 "$STATE/db.pass"; }
DB_PASS=$(cat "$STATE/db.pass")
mariadb --socket="$DB_SOCKET" -u root -e "
  CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY '$DB_PASS';
  CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY '$DB_PASS';
  GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';
  GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';"

# slurm.conf must be /etc/slurm/slurm.conf (a symlink): the executor's job step drops SLURM_CONF.
CPUS=$(nproc)
MEM=$(( $(slurmd -C | sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p') - 100 ))
cat > "$STATE/etc/slurm.conf" <<EOF
ClusterName=jstyleid
SlurmctldHost=$(hostname -s)(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$MUNGE_SOCKET
StateSaveLocation=$STATE/spool/ctld
SlurmdSpoolDir=$STATE/spool/d
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/slurmctld.log
SlurmdLogFile=$STATE/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
MpiDefault=none
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePass=$MUNGE_SOCKET
AccountingStoreFlags=job_comment
AccountingStorageTRES=gres/gpu,gres/gpu:standin
GresTypes=gpu
JobAcctGatherType=jobacct_gather/none
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$MEM Gres=gpu:standin:1 State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
EOF
# slurmdbd.conf: next to slurm.conf, mode 600.
install -m 600 /dev/stdin "$STATE/etc/slurmdbd.conf" <<EOF
AuthType=auth/munge
AuthInfo=socket=$MUNGE_SOCKET
DbdHost=localhost
SlurmUser=root
PidFile=$STATE/slurmdbd.pid
LogFile=$STATE/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=slurm
StoragePass=$DB_PASS
StorageLoc=slurm_acct_db
EOF
mkdir -p /etc/slurm
# The stand-in GPU needs a device file (`Flags=CountOnly` leaves the node INVAL; a file may serve only one GPU).
echo "NodeName=localhost Name=gpu Type=standin File=/dev/null" > "$STATE/etc/gres.conf"
for conf in slurm.conf gres.conf; do
  if [ -e "/etc/slurm/$conf" ] && [ "$(readlink "/etc/slurm/$conf")" != "$STATE/etc/$conf" ]; then
    log "/etc/slurm/$conf exists and is not ours; move it away first"; exit 1
  fi
  ln -sfn "$STATE/etc/$conf" "/etc/slurm/$conf"
done
export SLURM_CONF=$STATE/etc/slurm.conf

running slurmdbd || slurmdbd
wait_for slurmdbd 30 sacctmgr -n list cluster
running slurmctld || slurmctld
wait_for slurmctld 30 scontrol ping
running slurmd || slurmd -N localhost
wait_for "node localhost" 60 bash -c 'sinfo -h -n localhost -o %T | grep -qE "^(idle|mixed|allocated)$"'
log "up: $CPUS CPUs, $MEM MB, 1 stand-in GPU on node localhost; state in $STATE"
