"""packs.unload: remove every resource of the given packs from the database.

Rules go first (they reference actions and triggers), then aliases, policies, actions,
sensors and trigger types. Files on disk are left alone (see packs.delete).
"""

from st2common.runners.base_action import Action

from packs_common import SYSTEM_PACK_NAMES, ApiClient

__all__ = ["UnregisterPackAction"]

# (API collection, field holding the ref) in deletion order.
RESOURCES = [
    ("rules", "ref"),
    ("actionalias", "ref"),
    ("policies", "ref"),
    ("actions", "ref"),
    ("sensortypes", "ref"),
    ("triggertypes", "ref"),
]


class UnregisterPackAction(Action):
    def run(self, packs):
        blocked = sorted(set(SYSTEM_PACK_NAMES) & set(packs))
        if blocked:
            raise ValueError(
                "Unregister includes an unregisterable pack - %s." % ", ".join(blocked)
            )

        client = ApiClient()
        removed = {}
        for pack in packs:
            count = 0
            for resource, ref_field in RESOURCES:
                for item in client.list(resource, pack=pack):
                    # Some collections ignore the filter; never touch another pack.
                    if item.get("pack") != pack:
                        continue
                    client.delete(resource, item.get(ref_field) or item["id"])
                    count += 1
            # Finally the pack itself (with its config schema and config).
            try:
                client.delete("packs", pack)
            except RuntimeError as e:
                self.logger.warning('Could not remove pack record "%s": %s', pack, e)
            removed[pack] = count
            self.logger.info('Unregistered %s resources of pack "%s"', count, pack)
        return removed
