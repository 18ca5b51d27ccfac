#!/bin/bash
# check.sh PORT [MANAGER_ADDRESS...]: keepalived's track script. Exit 0 (this server may hold
# the address) only when the local Service answers on PORT at this server's own address AND
# more than half of the Swarm's managers answer on 2377 (counting this server if it is one):
# during a network cut only the side with the managers' quorum keeps the address.
port="${1:?usage: check.sh PORT [MANAGER_ADDRESS...]}"
shift
own=$(cat /run/keepalived/node-address 2>/dev/null) || exit 1

probe() {  # a TCP connect within one second
    timeout 1 bash -c "exec 3<>/dev/tcp/$1/$2" 2>/dev/null
}

probe "$own" "$port" || exit 1
[ "$#" -eq 0 ] && exit 0
pids=()
for manager in "$@"; do
    probe "$manager" 2377 &
    pids+=("$!")
done
reached=0
for pid in "${pids[@]}"; do
    wait "$pid" && reached=$((reached + 1))
done
[ $((reached * 2)) -gt "$#" ]
