#!/usr/bin/env bash
# Where a fleet rollback's time goes on this machine: wall time, CPU busy time of all
# processes (from /proc/stat, so the hosts' sshd sessions and agents count too) and the
# controller's own CPU (`lastgood` and its ssh clients, from /usr/bin/time), for a
# rollback on 1 and on 16 hosts. Same hosts as bench/fleet.sh (bench/lib/fleet-hosts.sh).
#   bash bench/fleet-cpu.sh          # LASTGOOD=/path/to/lastgood to use a prebuilt binary
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$HERE/lib/common.sh"
source "$HERE/lib/fleet-hosts.sh"
bench_binary
bench_workdir fleet-cpu
W="$WORK"
BASE="/var/lib/lastgood-fleet-cpu-$$"
trap 'fleet_cleanup; rm -rf "$W"' EXIT
fleet_start 16 "$W/fleet" "$BASE"
bench_repo "$W/repo"   # tags v1 and v2
for H in 1 16; do
    urls=$(awk -v u="$FLEET_USER" -v h="$H" 'NR<=h {printf "%s\"ssh://%s@%s:%s\"", (NR>1?", ":""), u, $1, $2}' "$W/fleet/hosts")
    mkdir -p "$W/lg$H"
    cat > "$W/lg$H/lastgood.toml" <<T
[environments.production]
hosts = [ $urls ]
ssh_config = "$W/fleet/ssh_config"
source = "$W/repo"
deploy_to = "$BASE/lg$H"
restart = ["true"]
parallel = $H
T
    L=("$LASTGOOD" --config "$W/lg$H/lastgood.toml" -q)
    "${L[@]}" deploy production v1 --reason bench >/dev/null
    "${L[@]}" deploy production v2 --reason bench >/dev/null
    for i in 1 2 3 4 5 6; do
        t=v1; [ $((i % 2)) = 0 ] && t=v2
        read -r _ u n s _ < /proc/stat; b1=$((u + n + s)); t1=$(date +%s%N)
        ctl=$( { /usr/bin/time -f "%U %S" "${L[@]}" rollback production --to $t --yes --reason bench >/dev/null; } 2>&1 )
        read -r _ u n s _ < /proc/stat; b2=$((u + n + s)); t2=$(date +%s%N)
        read -r cu cs <<< "$ctl"
        echo "hosts=$H wall=$(( (t2 - t1) / 1000000 ))ms cpu_all=$(( (b2 - b1) * 1000 / $(getconf CLK_TCK) ))ms controller=$(python3 -c "print(round(($cu+$cs)*1000))")ms"
    done
done
