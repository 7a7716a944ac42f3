"""packs.get_pack_dependencies: dependencies of the freshly downloaded packs.

Each pack.yaml `dependencies` entry is an install spec (`name`, `name=version`, a git URL).
A dependency already installed at another version is a conflict; one not installed yet (or
installed without a pinned version) goes to `dependency_list` for the next download round.
"""

import os

from st2common.runners.base_action import Action

from packs_common import packs_base_path, read_pack_meta, split_spec


def spec_name(name):
    """`https://github.com/org/stackstorm-foo.git` -> `foo`; `org/foo` -> `foo`."""
    name = name.rstrip("/").split("/")[-1].split(":")[-1]
    if name.endswith(".git"):
        name = name[: -len(".git")]
    if name.startswith("stackstorm-"):
        name = name[len("stackstorm-"):]
    return name.replace("-", "_")


class GetPackDependencies(Action):
    def run(self, packs_status, nested):
        base = packs_base_path()
        dependency_list, conflict_list = [], []
        if not packs_status or nested <= 0:
            return {"dependency_list": [], "conflict_list": [], "nested": nested - 1}

        for pack, status in packs_status.items():
            if "success" not in str(status).lower():
                continue
            try:
                meta = read_pack_meta(os.path.join(base, pack))
            except ValueError:
                continue
            for dep in meta.get("dependencies") or []:
                name, version = split_spec(dep)
                installed_dir = os.path.join(base, spec_name(name))
                if not os.path.isdir(installed_dir):
                    if dep not in dependency_list:
                        dependency_list.append(dep)
                    continue
                installed = read_pack_meta(installed_dir).get("version")
                if version and installed and version.lstrip("v") != installed:
                    conflict_list.append(
                        "%s (installed: %s, required by %s: %s)"
                        % (spec_name(name), installed, pack, version)
                    )

        return {
            "dependency_list": dependency_list,
            "conflict_list": conflict_list,
            "nested": nested - 1,
        }
