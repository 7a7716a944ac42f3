#!/usr/bin/env python
"""linux.wait_for_ssh: retry until an SSH server accepts a connection (and login).

With paramiko available the action authenticates (password, key file, or the system
user's key from ST2_SYSTEM_USER__SSH_KEY_FILE); without it, it waits for the server's
SSH banner.
"""

import os
import socket
import time

from st2common.runners.base_action import Action

try:
    import paramiko
except ImportError:  # pragma: no cover - depends on the environment
    paramiko = None

__all__ = ["WaitForSSHAction"]


class WaitForSSHAction(Action):
    def run(
        self,
        hostname,
        port=22,
        username=None,
        password=None,
        keyfile=None,
        ssh_timeout=5,
        sleep_delay=20,
        retries=10,
    ):
        if not password and not keyfile:
            keyfile = os.environ.get("ST2_SYSTEM_USER__SSH_KEY_FILE")
        username = username or os.environ.get("ST2_SYSTEM_USER__USER", "stanley")

        for attempt in range(1, retries + 1):
            try:
                self.logger.debug("SSH connection attempt: %s", attempt)
                self._connect(hostname, port, username, password, keyfile, ssh_timeout)
                return True
            except Exception as e:
                self.logger.info("Attempt %s failed (%s), sleeping for %s seconds...",
                                 attempt, e, sleep_delay)
                if attempt < retries:
                    time.sleep(sleep_delay)

        raise Exception("Exceeded max retries (%s)" % retries)

    @staticmethod
    def _connect(hostname, port, username, password, keyfile, timeout):
        if paramiko is None:
            with socket.create_connection((hostname, port), timeout=timeout) as sock:
                sock.settimeout(timeout)
                banner = sock.recv(256)
                if not banner.startswith(b"SSH-"):
                    raise Exception("Not an SSH server: %r" % banner[:40])
            return
        client = paramiko.SSHClient()
        client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
        try:
            client.connect(
                hostname,
                port=port,
                username=username,
                password=password,
                key_filename=keyfile,
                timeout=timeout,
                allow_agent=False,
                look_for_keys=False,
            )
        finally:
            client.close()
