"""packs.setup_virtualenv: (re)create each pack's Python virtual environment.

The environment lives in `<virtualenvs path>/<pack>` and gets the pack's requirements.txt.
With `update`, an existing environment is kept and only the requirements are installed.
"""

import os
import shutil
import subprocess
import sys

from st2common.runners.base_action import Action

from packs_common import packs_base_path, virtualenvs_path


class SetupVirtualEnvironmentAction(Action):
    def run(self, packs, update=False, env=None, python3=False):
        results = []
        for pack in packs or []:
            self._setup(pack, update, env or {})
            results.append('Successfully set up virtualenv for pack "%s"' % pack)
        return "\n".join(results)

    def _setup(self, pack, update, extra_env):
        pack_dir = os.path.join(packs_base_path(), pack)
        if not os.path.isdir(pack_dir):
            raise ValueError('Pack "%s" is not installed in %s' % (pack, packs_base_path()))
        venv = os.path.join(virtualenvs_path(), pack)
        env = dict(os.environ, **{k: str(v) for k, v in extra_env.items()})
        python = os.environ.get("ST2_ACTIONRUNNER__PYTHON_BINARY", sys.executable)

        if not update and os.path.isdir(venv):
            shutil.rmtree(venv)
        if not os.path.isdir(venv):
            self.logger.info('Creating virtualenv for pack "%s" in %s', pack, venv)
            self._run([python, "-m", "venv", "--system-site-packages", venv], env)

        pip = os.path.join(venv, "bin", "pip")
        requirements = os.path.join(pack_dir, "requirements.txt")
        if os.path.isfile(requirements) and _has_requirements(requirements):
            self.logger.info('Installing requirements of pack "%s"', pack)
            self._run([pip, "install", "-r", requirements], env)

    @staticmethod
    def _run(cmd, env):
        proc = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        if proc.returncode != 0:
            raise Exception(
                "Command %s failed: %s" % (" ".join(cmd), proc.stderr.decode("utf-8", "replace"))
            )


def _has_requirements(path):
    with open(path) as fp:
        return any(l.strip() and not l.strip().startswith("#") for l in fp)
