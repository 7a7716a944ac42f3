"""packs.show: the index entry of one pack."""

import os

from st2common.runners.base_action import Action

from packs_common import get_pack_from_index

__all__ = ["ShowRemote"]


class ShowRemote(Action):
    def run(self, pack):
        config = self.config or {}
        proxy_config = {
            k: os.environ.get(k, config.get(k))
            for k in ("http_proxy", "https_proxy", "proxy_ca_bundle_path", "no_proxy")
        }
        return {"pack": get_pack_from_index(pack, proxy_config)}
