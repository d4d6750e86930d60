#!/bin/sh
# Runs inside a container booted with a real systemd 252. Drives the installed
# config/cilium-agent.service and writes one line per check to /results:
#   PASS name   or   FAIL name: why
R=/results/results.txt
: > "$R"
pass() { echo "PASS $1" >> "$R"; }
fail() { echo "FAIL $1: $2" >> "$R"; }
prop() { systemctl show -p "$1" --value cilium-agent.service; }
state() { echo "$(prop ActiveState)/$(prop SubState)"; }
wait_state() { # wait_state WANT SECONDS
    i=0
    while [ "$(state)" != "$1" ] && [ $i -lt $(($2 * 10)) ]; do sleep 0.1; i=$((i + 1)); done
    [ "$(state)" = "$1" ]
}
journal() { journalctl -u cilium-agent.service --no-pager -o cat 2>/dev/null; }

# 1. start blocks until READY=1
t0=$(date +%s%N)
if systemctl start cilium-agent.service; then
    t1=$(date +%s%N)
    s=$(state)
    if [ "$s" = "active/running" ] && cilium status --brief | grep -qx OK; then
        pass "start: active/running after $(( (t1 - t0) / 1000000 )) ms, API answers"
    else
        fail start "state $s, cilium status: $(cilium status --brief 2>&1)"
    fi
else
    fail start "systemctl start failed: $(journal | tail -n 20)"
fi

# 2. STATUS= shows the agent's status line
st=$(prop StatusText)
case "$st" in
    Ok:*subsystems\ running*) pass "statustext: $st" ;;
    *) fail statustext "StatusText is '$st'" ;;
esac

# 3. systemctl reload: reloading -> running (RELOADING=1 ... READY=1)
pid=$(prop MainPID)
if systemctl reload cilium-agent.service && wait_state active/running 10; then
    if journal | grep -q "reloaded configuration" && [ "$(prop MainPID)" = "$pid" ]; then
        pass "reload: back to active/running, same pid"
    else
        fail reload "agent did not log a reload or pid changed: $(journal | tail -n 5)"
    fi
else
    fail reload "state $(state)"
fi

# 4. cilium config set toggles a subsystem live (the agent reloads itself)
if cilium config set hostFirewall.enabled=true >/dev/null && wait_state active/running 10 &&
   cilium status | grep -q "^Host firewall: *Enabled"; then
    pass "config-set: host firewall enabled live"
else
    fail config-set "$(cilium status 2>&1 | head -n 12)"
fi

# 5. a bad config is refused on reload; the agent keeps running the old one
cp /etc/cilium/values.yaml /tmp/values.good
printf 'hubble:\n  enabled: maybe\n' >> /etc/cilium/values.yaml
systemctl reload cilium-agent.service; wait_state active/running 10
if cilium status -o json | grep -q 'lastReloadError' && cilium status | grep -q "values.yaml:[0-9]*:[0-9]*" ; then
    pass "bad-reload: refused with file:line:column, still running"
else
    fail bad-reload "$(cilium status 2>&1 | tail -n 3)"
fi
cp /tmp/values.good /etc/cilium/values.yaml
systemctl reload cilium-agent.service; wait_state active/running 10

# 6. an agent that stops answering the watchdog is killed and restarted
pid=$(prop MainPID)
[ "$pid" -gt 1 ] && kill -STOP "$pid"
i=0
while [ $i -lt 400 ]; do
    new=$(prop MainPID)
    if [ "$new" != "$pid" ] && [ "$new" != 0 ] && [ "$(state)" = "active/running" ]; then break; fi
    sleep 0.1; i=$((i + 1))
done
if [ "$(prop MainPID)" != "$pid" ] && [ "$(state)" = "active/running" ] && journal | grep -qi "watchdog"; then
    pass "watchdog: hung agent killed and restarted (NRestarts=$(prop NRestarts))"
else
    fail watchdog "state $(state), pid $pid -> $(prop MainPID), journal: $(journal | tail -n 5)"
fi

# 7. systemctl stop ends cleanly (STOPPING=1, exit 0)
if systemctl stop cilium-agent.service && [ "$(prop ActiveState)" = inactive ] && [ "$(prop Result)" = success ]; then
    pass "stop: inactive, result success"
else
    fail stop "state $(state), result $(prop Result)"
fi
echo DONE >> "$R"
journal > /results/agent-journal.txt
