#!/usr/bin/env python
"""packs.get_config: where packs live and which group owns them."""

import os

from st2common.runners.base_action import Action

from packs_common import packs_base_path


class RenderTemplateAction(Action):
    def run(self):
        return {
            "pack_group": os.environ.get("ST2_CONTENT__PACK_GROUP", "st2packs"),
            "pack_path": packs_base_path(),
        }
