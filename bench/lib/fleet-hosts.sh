# A fleet of real ssh hosts on loopback, for the benchmarks: the bash version of
# crates/lastgood-testkit/src/fleet.rs. Source it, then:
#
#   fleet_start N DIR BASE   starts N hosts. DIR (a fresh folder) gets the keys, sshd
#                            configs and logs, DIR/ssh_config, DIR/known_hosts,
#                            DIR/id_ed25519 (the client key, root on every host) and
#                            DIR/hosts (one "ADDR PORT HOLDER_PID" line per host).
#                            Every host has a private tmpfs over BASE (same path, own
#                            files), readable here at /proc/<HOLDER_PID>/root/BASE.
#   fleet_host_stop K        host K (1-based) down: kills its sshd and ssh sessions
#   fleet_host_start K       host K back (same address, port, key and files)
#   fleet_cleanup            kills everything in every host's mount namespace and
#                            removes BASE's (empty) mount point; call it from an EXIT trap
#
# A host is one /usr/sbin/sshd on 127.0.(230-249).K (FLEET_NET overrides "127.0.N"; the
# test fixture uses 127.0.20-219.x), run with nsenter inside a mount namespace held
# by `unshare -m ... sleep infinity`. Loopback only. Needs root, openssh-server and
# util-linux (scripts/services.sh installs them).

FLEET_NET="${FLEET_NET:-127.0.$((230 + $$ % 20))}"  # concurrent runs get different addresses
export FLEET_USER="${FLEET_USER:-lgbench}"
FLEET_DIR=""
FLEET_BASE=""
FLEET_ADDRS=()
FLEET_PORTS=()
FLEET_HOLDERS=()
FLEET_SSHDS=()
FLEET_NS=()

fleet_die() { echo "fleet: $*" >&2; exit 1; }

fleet_free_port() { # ADDR
    python3 -c 'import socket,sys; s=socket.socket(); s.bind((sys.argv[1], 0)); print(s.getsockname()[1])' "$1"
}

fleet_start() { # N DIR BASE
    local n="$1" k addr port holder
    FLEET_DIR="$2"
    FLEET_BASE="$3"
    [[ -x /usr/sbin/sshd ]] || fleet_die "/usr/sbin/sshd is missing: apt-get install -y openssh-server (scripts/services.sh does)"
    for t in unshare nsenter ssh ssh-keygen python3; do
        command -v "$t" >/dev/null || fleet_die "$t is missing (util-linux / openssh-client / python3)"
    done
    [[ "$(id -u)" == 0 ]] || fleet_die "needs root (mount namespaces, sshd, root logins)"
    mkdir -p "$FLEET_DIR" "$FLEET_BASE" /run/sshd
    # A deploy user with a plain /bin/sh, as deploy users are: root's shell startup here
    # (pyenv in ~/.bashrc, which bash reads for ssh commands) costs ~90 ms of CPU per
    # ssh session, for lastgood and Ansible alike, and would measure this VM, not them.
    id "$FLEET_USER" >/dev/null 2>&1 || useradd -M -d /nonexistent -s /bin/sh "$FLEET_USER"
    usermod -p '*' "$FLEET_USER"   # no password, but not a locked account (sshd refuses those)
    chmod 755 "$FLEET_DIR" "$(dirname "$FLEET_DIR")"  # sshd reads authorized_keys as the user
    ssh-keygen -q -t ed25519 -N "" -C lastgood-bench-client -f "$FLEET_DIR/id_ed25519"
    cp "$FLEET_DIR/id_ed25519.pub" "$FLEET_DIR/authorized_keys"
    chmod 644 "$FLEET_DIR/authorized_keys"
    : > "$FLEET_DIR/known_hosts"
    : > "$FLEET_DIR/hosts"
    : > "$FLEET_DIR/ssh_config"
    for ((k = 1; k <= n; k++)); do
        addr="$FLEET_NET.$k"
        port="$(fleet_free_port "$addr")"
        ssh-keygen -q -t ed25519 -N "" -C "lastgood-bench-host$k" -f "$FLEET_DIR/host${k}_ed25519"
        cat > "$FLEET_DIR/sshd$k.conf" <<EOF
ListenAddress $addr:$port
HostKey $FLEET_DIR/host${k}_ed25519
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
AuthorizedKeysFile $FLEET_DIR/authorized_keys
StrictModes no
UsePAM no
PidFile none
UseDNS no
PrintMotd no
PrintLastLog no
MaxStartups 100:30:200
MaxSessions 100
LogLevel ERROR
Subsystem sftp /usr/lib/openssh/sftp-server
EOF
        # The holder: a new mount namespace with a private tmpfs over BASE.
        unshare -m --propagation private sh -c \
            "mount -t tmpfs -o mode=0755,uid=$(id -u "$FLEET_USER") lastgood-bench '$FLEET_BASE' && echo ready && exec sleep infinity" \
            > "$FLEET_DIR/holder$k.ready" 2> "$FLEET_DIR/holder$k.err" &
        holder=$!
        disown "$holder"  # no "Killed" notices at cleanup
        FLEET_HOLDERS[k]=$holder
        for _ in $(seq 1 200); do
            [[ -s "$FLEET_DIR/holder$k.ready" ]] && break
            kill -0 "$holder" 2>/dev/null || break
            sleep 0.01
        done
        [[ "$(cat "$FLEET_DIR/holder$k.ready")" == ready ]] ||
            fleet_die "cannot make host $k's mount namespace: $(cat "$FLEET_DIR/holder$k.err")"
        FLEET_NS[k]="$(readlink "/proc/$holder/ns/mnt")"
        FLEET_ADDRS[k]=$addr
        FLEET_PORTS[k]=$port
        echo "$addr $port $holder" >> "$FLEET_DIR/hosts"
        echo "[$addr]:$port $(cut -d' ' -f1-2 "$FLEET_DIR/host${k}_ed25519.pub")" >> "$FLEET_DIR/known_hosts"
        cat >> "$FLEET_DIR/ssh_config" <<EOF
Host $addr
    Port $port
    User $FLEET_USER
    IdentityFile $FLEET_DIR/id_ed25519
    IdentitiesOnly yes
    UserKnownHostsFile $FLEET_DIR/known_hosts

EOF
    done
    cat >> "$FLEET_DIR/ssh_config" <<EOF
Host *
    BatchMode yes
    StrictHostKeyChecking yes
    UpdateHostKeys no
    GlobalKnownHostsFile /dev/null
    ConnectTimeout 5
EOF
    for ((k = 1; k <= n; k++)); do fleet_spawn_sshd "$k"; done
    for ((k = 1; k <= n; k++)); do fleet_wait "$k"; done
}

fleet_spawn_sshd() { # K
    local k="$1"
    nsenter -t "${FLEET_HOLDERS[k]}" -m /usr/sbin/sshd -D -e -f "$FLEET_DIR/sshd$k.conf" \
        < /dev/null >> "$FLEET_DIR/sshd$k.log" 2>&1 &
    FLEET_SSHDS[k]=$!
    disown "$!"
}

fleet_wait() { # K: until `ssh ... true` logs in
    local k="$1" i
    for i in $(seq 1 150); do
        ssh -F "$FLEET_DIR/ssh_config" "${FLEET_ADDRS[k]}" true 2>/dev/null && return 0
        kill -0 "${FLEET_SSHDS[k]}" 2>/dev/null || fleet_die "sshd of host $k exited: $(tail -5 "$FLEET_DIR/sshd$k.log")"
        sleep 0.05
    done
    fleet_die "cannot log in to host $k (${FLEET_ADDRS[k]}:${FLEET_PORTS[k]}): $(ssh -F "$FLEET_DIR/ssh_config" "${FLEET_ADDRS[k]}" true 2>&1) $(tail -5 "$FLEET_DIR/sshd$k.log")"
}

fleet_ns_pids() { # NS: live processes in that mount namespace
    local p
    for p in /proc/[0-9]*; do
        if [[ "$(readlink "$p/ns/mnt" 2>/dev/null)" == "$1" ]]; then echo "${p#/proc/}"; fi
    done
    return 0
}

fleet_host_stop() { # K: kill sshd and its sessions (not what runs under setsid)
    local k="$1" ns="${FLEET_NS[$1]}" p exe
    kill -9 "${FLEET_SSHDS[k]}" 2>/dev/null || true
    while kill -0 "${FLEET_SSHDS[k]}" 2>/dev/null; do sleep 0.01; done
    for p in $(fleet_ns_pids "$ns"); do
        exe="$(readlink "/proc/$p/exe" 2>/dev/null)"
        if [[ "$exe" == /usr/sbin/sshd ]]; then kill -9 "$p" 2>/dev/null || true; fi
    done
    return 0
}

fleet_host_start() { # K
    fleet_spawn_sshd "$1"
    fleet_wait "$1"
}

fleet_cleanup() { # safe under set -e (runs in EXIT traps)
    local k ns pids round
    for k in "${!FLEET_NS[@]}"; do
        ns="${FLEET_NS[k]}"
        for round in $(seq 1 50); do
            pids="$(fleet_ns_pids "$ns")"
            [[ -z "$pids" ]] && break
            # shellcheck disable=SC2086
            kill -9 $pids 2>/dev/null || true
            sleep 0.01
        done
    done
    if [[ -n "$FLEET_BASE" ]]; then rmdir "$FLEET_BASE" 2>/dev/null || true; fi
    return 0
}
