"""packs.search: packs of the index whose name, keywords or description match `query`."""

import os

from st2common.runners.base_action import Action

from packs_common import search_index

__all__ = ["PackSearch"]


class PackSearch(Action):
    def __init__(self, config=None, action_service=None):
        super(PackSearch, self).__init__(config=config, action_service=action_service)
        config = self.config or {}
        self.proxy_config = {
            k: os.environ.get(k, config.get(k))
            for k in ("http_proxy", "https_proxy", "proxy_ca_bundle_path", "no_proxy")
        }

    def run(self, query):
        return search_index(query, proxy_config=self.proxy_config)
