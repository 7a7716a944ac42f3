"""packs.virtualenv_prerun: the refs of the packs that downloaded successfully."""

from st2common.runners.base_action import Action


class PacksTransformationAction(Action):
    def run(self, packs_status, packs_list=None):
        packs = list(packs_list or [])
        for pack, status in (packs_status or {}).items():
            if "success" in str(status).lower() and pack not in packs:
                packs.append(pack)
        return packs
