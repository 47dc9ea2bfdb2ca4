# notifyd-common.sh: what contrib/hylafax's two hooks share (sourced, POSIX sh): their
# settings (/etc/notifyd/hylafax.conf, or the file NOTIFYD_HYLAFAX_CONF names), the account
# a fax belongs to (the NOTIFYD_ACCOUNTS map) and the one way they post: `notifyd send`,
# bounded by NOTIFYD_TIMEOUT, spooled when notifyd cannot take it. Its neighbours:
# notifyd-faxrcvd (a fax received, from etc/FaxDispatch) and notifyd-notify (a job sent or
# failed, from etc/FaxNotify); docs/integrations.md "HylaFAX" sets them up.

NOTIFYD_SEND=/opt/notifyd-send/bin/notifyd
NOTIFYD_TIMEOUT=10
NOTIFYD_SPOOL=
NOTIFYD_ACCOUNTS=/etc/notifyd/fax-accounts
NOTIFYD_DID=3
notifyd_conf=${NOTIFYD_HYLAFAX_CONF:-/etc/notifyd/hylafax.conf}

# One line to syslog (faxgetty and faxq send a script's stderr nowhere useful) and stderr.
# Callers pass ids and states only: never a number, a name or an address.
notifyd_log() {
    logger -t notifyd-hylafax -- "$*" 2>/dev/null
    printf 'notifyd-hylafax: %s\n' "$*" >&2
}

if [ -r "$notifyd_conf" ]; then
    . "$notifyd_conf"
else
    notifyd_log "cannot read $notifyd_conf; nothing sent"
    exit 0
fi

# notifyd_account KIND:VALUE ...: the account of the first key the map lists (one
# `KIND:VALUE ACCOUNT` a line); prints nothing when none is there.
notifyd_account() {
    [ -r "$NOTIFYD_ACCOUNTS" ] || return 0
    for key in "$@"; do
        case $key in *:) continue ;; esac  # a value HylaFAX did not have
        found=$(awk -v key="$key" '$1 == key { print $2; exit }' "$NOTIFYD_ACCOUNTS")
        if [ -n "$found" ]; then
            printf '%s\n' "$found"
            return 0
        fi
    done
}

# notifyd_post TYPE WEBHOOK-ID ACCOUNT SEND-ARGUMENTS...: post the event. Always returns 0:
# a hook's failure must not fail HylaFAX's script; what went wrong is logged.
notifyd_post() {
    type=$1 id=$2 account=$3
    shift 3
    if [ -z "$account" ]; then
        notifyd_log "$id: no account in $NOTIFYD_ACCOUNTS for this fax; nothing sent"
        return 0
    fi
    if [ -n "$NOTIFYD_SPOOL" ]; then
        set -- --spool "$NOTIFYD_SPOOL" "$@"
    fi
    said=$("$NOTIFYD_SEND" send --url "$NOTIFYD_URL" --secret-file "$NOTIFYD_SECRET_FILE" \
        --timeout "$NOTIFYD_TIMEOUT" --type "$type" --account "$account" --id "$id" \
        "$@" 2>&1 >/dev/null)
    status=$?
    if [ "$status" -ne 0 ]; then
        notifyd_log "$id: notifyd send exited $status: $said"
    elif [ -n "$said" ]; then
        notifyd_log "$id: $said"  # spooled: the next drain posts it
    fi
    return 0
}

notifyd_now() {
    date -u +%Y-%m-%dT%H:%M:%SZ
}
