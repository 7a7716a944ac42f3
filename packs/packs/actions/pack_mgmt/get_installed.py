"""packs.get: metadata and git state of an installed pack."""

import os
import subprocess

from st2common.runners.base_action import Action

from packs_common import packs_base_path, read_pack_meta

__all__ = ["GetInstalled"]


class GetInstalled(Action):
    def run(self, pack):
        pack_dir = os.path.join(packs_base_path(), pack)
        if not os.path.isdir(pack_dir):
            return {"pack": None, "git_status": None}

        result = {"pack": read_pack_meta(pack_dir), "git_status": None}
        if os.path.isdir(os.path.join(pack_dir, ".git")):
            proc = subprocess.run(
                ["git", "-C", pack_dir, "status", "--short", "--branch"],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            if proc.returncode == 0:
                result["git_status"] = proc.stdout.decode("utf-8", "replace")
        return result
