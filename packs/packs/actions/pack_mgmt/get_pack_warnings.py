"""packs.get_pack_warnings: warnings about the downloaded packs' metadata."""

import os

from st2common.runners.base_action import Action

from packs_common import packs_base_path, read_pack_meta


class GetPackWarnings(Action):
    def run(self, packs_status):
        warning_list = []
        base = packs_base_path()
        for pack, status in (packs_status or {}).items():
            if "success" not in str(status).lower():
                continue
            try:
                meta = read_pack_meta(os.path.join(base, pack))
            except ValueError:
                continue
            pythons = [str(v) for v in meta.get("python_versions") or []]
            if pythons and "3" not in pythons:
                warning_list.append(
                    "DEPRECATION WARNING: Pack %s only supports Python 2.x. "
                    "Python 2 support has been removed; this pack may not work." % pack
                )
        return {"warning_list": warning_list}
