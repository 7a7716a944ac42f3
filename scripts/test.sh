#!/usr/bin/env bash
# Runs every test of the project, installing and starting what the tests need first.
# Usage: scripts/test.sh [extra cargo test args]
set -euo pipefail
cd "$(dirname "$0")/.."

# Python 3 with venv: pack virtualenvs and Python actions are tested for real.
if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq && apt-get install -y -qq python3 python3-venv >/dev/null
  fi
fi
# OpenSSH server: remote-shell runners are tested against a private sshd on 127.0.0.1.
if [ ! -x /usr/sbin/sshd ] || ! command -v ssh-keygen >/dev/null 2>&1; then
  apt-get update -qq && apt-get install -y -qq openssh-server openssh-client >/dev/null
fi
# setsid (util-linux): runners start actions in their own session.
command -v setsid >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq util-linux >/dev/null; }
# git: pack install tests build real repositories (libgit2 is vendored; the CLI helps debugging).
command -v git >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq git >/dev/null; }

cargo test --workspace --all-targets "$@"
