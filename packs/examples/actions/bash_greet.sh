#!/usr/bin/env bash
# examples.bash_greet: bash_greet.sh [--greeting=<word>] [--shout] <name> [count]
#
# Named arguments come as --key=value (a true boolean may come as a bare --key, a false one
# as --key=False or not at all); positional arguments follow in `position` order.

set -euo pipefail

greeting="Hello"
shout=false
positional=()

for arg in "$@"; do
    case "${arg}" in
        --greeting=*) greeting="${arg#--greeting=}" ;;
        --shout) shout=true ;;
        --shout=*)
            value="${arg#--shout=}"
            [[ "${value,,}" == "true" || "${value}" == "1" ]] && shout=true || shout=false
            ;;
        --*) echo "unknown option: ${arg}" >&2; exit 2 ;;
        *) positional+=("${arg}") ;;
    esac
done

name="${positional[0]:-}"
count="${positional[1]:-1}"
if [[ -z "${name}" ]]; then
    echo "usage: bash_greet.sh [--greeting=<word>] [--shout] <name> [count]" >&2
    exit 2
fi
if ! [[ "${count}" =~ ^[0-9]+$ ]]; then
    echo "count must be a number, got \"${count}\"" >&2
    exit 2
fi

for ((i = 1; i <= count; i++)); do
    line="${greeting}, ${name}! (${i}/${count})"
    if [[ "${shout}" == true ]]; then
        line="${line^^}"
    fi
    echo "${line}"
done
