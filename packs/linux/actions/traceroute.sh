#!/usr/bin/env bash
# linux.traceroute: traceroute <host> [max hops] [queries per hop]

HOST=$1
MAX_HOPS="${2:-30}"
MAX_QUERIES_TO_HOP="${3:-3}"

if [[ -z "${HOST}" ]]; then
    echo "Usage: traceroute.sh <host> [hops] [queries_to_hop]" >&2
    exit 2
fi

traceroute -q "${MAX_QUERIES_TO_HOP}" -m "${MAX_HOPS}" "${HOST}"
