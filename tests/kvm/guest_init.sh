#!/bin/sh
# /init of the test guest (busybox sh as PID 1). Its whole interface is the serial console ttyS0:
#   READY <kernel version>          once, when the modules are loaded and commands are served
#   BLOCK <dev> <dev>...            at start and at every change of /sys/block (loop/ram left out)
#   POWEROFF                        when the ACPI power button was pressed, just before power-off
# Commands, one a line: "<id> <command> <args>"; the answer is "OK <id> <result>" or
# "ERR <id> <reason>" (ids are chosen by the host so answers can be told from kernel messages):
#   ping                            -> OK <id> pong <kernel version>
#   uptime                          -> OK <id> <seconds since the guest's kernel started>
#   blocks                          -> OK <id> <dev> <dev>...
#   sha256 <dev> <length> [offset]  -> OK <id> <hex sha256 of those bytes of /dev/<dev>>
#   write <dev> <offset> <count> <pattern>
#                                   writes <pattern> (no spaces) repeated to <count> bytes at
#                                   byte <offset> of /dev/<dev>, flushed to the device -> OK <id>
#   sync                            -> OK <id>
#   poweroff                        -> OK <id>, then the same path as the power button
/bin/busybox mkdir -p /proc /sys /dev /tmp /var/log /var/run
/bin/busybox mount -t proc proc /proc
/bin/busybox --install -s /bin
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
CONSOLE=/dev/ttyS0

# Modules in dependency order, listed by the kit from the kernel package's own .ko files.
while read -r module; do
    insmod "/lib/modules/$module" || echo "WARN insmod $module failed" >"$CONSOLE"
done </etc/guestkit/modules

# The power button: busybox acpid runs /etc/acpi/PWRF/00000080 for KEY_POWER read from the event
# devices /dev/input/event0, 1, ... (the button's is among them once button and evdev are loaded).
acpid -c /etc/acpi -l /var/log/acpid.log || echo "WARN acpid failed" >"$CONSOLE"

stty -F "$CONSOLE" 115200 raw -echo

blocks() {
    set --
    for dev in /sys/block/*; do
        name=${dev##*/}
        case $name in loop*|ram*|zram*|\*) ;; *) set -- "$@" "$name" ;; esac
    done
    echo "$*"
}

watch_blocks() {
    last=unset
    while :; do
        now=$(blocks)
        if [ "$now" != "$last" ]; then
            echo "BLOCK $now"
            last=$now
        fi
        sleep 0.2
    done
}

number() {
    case $1 in ''|*[!0-9]*) return 1 ;; esac
}

device() {
    case $1 in ''|*[!a-z0-9]*) return 1 ;; esac
    [ -b "/dev/$1" ]
}

answer() {
    id=$1 cmd=$2 a1=$3 a2=$4 a3=$5 a4=$6
    case $cmd in
    ping)
        echo "OK $id pong $(uname -r)" ;;
    blocks)
        echo "OK $id $(blocks)" ;;
    uptime)
        read -r up _ </proc/uptime
        echo "OK $id $up" ;;
    sha256)
        device "$a1" && number "$a2" && number "${a3:-0}" || { echo "ERR $id bad arguments"; return; }
        sum=$(dd if="/dev/$a1" bs=65536 iflag=skip_bytes,count_bytes,fullblock skip="${a3:-0}" \
              count="$a2" 2>/dev/null | sha256sum)
        echo "OK $id ${sum%% *}" ;;
    write)
        device "$a1" && number "$a2" && number "$a3" && [ -n "$a4" ] \
            || { echo "ERR $id bad arguments"; return; }
        if yes "$a4" | tr -d '\n' | dd of="/dev/$a1" bs=65536 iflag=fullblock,count_bytes \
               count="$a3" oflag=seek_bytes seek="$a2" conv=notrunc,fsync 2>/dev/null; then
            echo "OK $id"
        else
            echo "ERR $id write failed"
        fi ;;
    sync)
        sync
        echo "OK $id" ;;
    poweroff)
        echo "OK $id"
        /etc/acpi/PWRF/00000080 ;;
    *)
        echo "ERR $id unknown command $cmd" ;;
    esac
}

echo "READY $(uname -r)" >"$CONSOLE"
watch_blocks >"$CONSOLE" 2>&1 &
while :; do
    while read -r line; do
        set -f
        # shellcheck disable=SC2086
        set -- $line
        set +f
        answer "$@"
    done <"$CONSOLE" >"$CONSOLE" 2>&1
done
