"""packs.delete: remove pack directories (and their virtual environments) from disk."""

import os
import shutil

from st2common.runners.base_action import Action

from packs_common import SYSTEM_PACK_NAMES, packs_base_path, virtualenvs_path

__all__ = ["UninstallPackAction"]


class UninstallPackAction(Action):
    def run(self, packs, abs_repo_base, delete_env=True):
        blocked = sorted(set(SYSTEM_PACK_NAMES) & set(packs))
        if blocked:
            raise ValueError("Uninstall includes an uninstallable pack - %s." % ", ".join(blocked))
        if os.environ.get("ST2_CONTENT__PACKS_BASE_PATHS"):
            abs_repo_base = packs_base_path()

        for pack in packs:
            # Pack names come from users: never let one escape the base directory.
            if os.sep in pack or pack in ("", ".", ".."):
                raise ValueError('Invalid pack name "%s"' % pack)
            pack_dir = os.path.join(abs_repo_base, pack)
            if os.path.isdir(pack_dir):
                self.logger.debug('Deleting pack directory "%s"', pack_dir)
                shutil.rmtree(pack_dir)
            venv = os.path.join(virtualenvs_path(), pack)
            if delete_env and os.path.isdir(venv):
                self.logger.debug('Deleting virtualenv "%s" of pack "%s"', venv, pack)
                shutil.rmtree(venv)
        return {"deleted": list(packs)}
