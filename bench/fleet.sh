#!/usr/bin/env bash
# Rollback across ssh fleets: `lastgood rollback` on 1, 4 and 16 hosts (wall time), and
# the same symlink flip done by an Ansible playbook (ansible-core from PyPI, in a venv
# under /tmp) with forks equal to the host count, side by side.
#
#   LASTGOOD=/path/to/lastgood bash bench/fleet.sh
#   N=30 WARMUP=3 HOSTS="1 4 16" bash bench/fleet.sh
#   ANSIBLE_PIPELINING=False bash bench/fleet.sh     # Ansible's out-of-the-box transfer mode
#   KEEP=1 bash bench/fleet.sh                       # keep the temp dir (printed)
#
# The hosts are real sshd processes on 127.0.(230-249).K (loopback only), each with a private
# tmpfs over the deploy folder (bench/lib/fleet-hosts.sh, the bash twin of the test
# fixture crates/lastgood-testkit/src/fleet.rs); everything is killed on exit.
# Needs root, openssh-server, util-linux (scripts/services.sh installs them) and PyPI.
# Goals (issue): 16 hosts within 2x one host; at least 5x faster than Ansible at 16.
# If lastgood fails, its stderr is printed, the Ansible half still runs, and the script
# exits non-zero.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$HERE/lib/common.sh"
source "$HERE/lib/fleet-hosts.sh"
N="${N:-15}"
WARMUP="${WARMUP:-2}"
HOSTS="${HOSTS:-1 4 16}"
VENV="${ANSIBLE_VENV:-/tmp/bench-ansible-venv}"

if [[ ! -x "$VENV/bin/ansible-playbook" ]]; then
    echo "installing ansible-core into $VENV" >&2
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q ansible-core >&2
fi
"$VENV/bin/ansible-playbook" --version >/dev/null

# lastgood is optional here: without a working binary only Ansible is measured.
if (bench_binary) >&2; then
    bench_binary
else
    echo "no lastgood binary: measuring Ansible only" >&2
    LASTGOOD=""
fi
export LASTGOOD

bench_workdir fleet
cleanup() {
    fleet_cleanup
    [[ -n "${KEEP:-}" ]] || rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

max=0
for h in $HOSTS; do ((h > max)) && max=$h; done
BASE="/var/lib/lastgood-fleet/bench-$$"
fleet_start "$max" "$WORK/fleet" "$BASE"
echo "started $max hosts ($FLEET_NET.1-$max), deploy folders under $BASE" >&2

bench_repo "$WORK/repo"   # tags v1 and v2

# Ansible's side: its own folder on every host, releases 1 and 2, current -> releases/2.
for ((k = 1; k <= max; k++)); do
    ssh -F "$WORK/fleet/ssh_config" "${FLEET_ADDRS[k]}" \
        "mkdir -p '$BASE/ansible/releases/1' '$BASE/ansible/releases/2' && ln -sfn releases/2 '$BASE/ansible/current'"
done
cat > "$WORK/flip.yml" <<'YAML'
- name: Roll back (flip current)
  hosts: all
  gather_facts: false
  tasks:
    - name: Point current at releases/{{ target }} atomically, then restart (a no-op)
      ansible.builtin.shell: ln -sfn releases/{{ target }} current.tmp && mv -T current.tmp current && true
      args:
        chdir: "{{ dir }}"
YAML

echo "lastgood: ${LASTGOOD:-none}${LASTGOOD:+ ($("$LASTGOOD" --version))}" >&2
echo "ansible: $("$VENV/bin/ansible-playbook" --version | head -1)" >&2
echo "machine: nproc=$(nproc) kernel=$(uname -r) date=$(date -u +%Y-%m-%dT%H:%MZ)" >&2
rc=0
python3 "$HERE/lib/fleet_driver.py" "$WORK" "$WORK/fleet" "$BASE" "$VENV/bin/ansible-playbook" \
    "$N" "$WARMUP" "$HOSTS" || rc=$?
exit "$rc"
