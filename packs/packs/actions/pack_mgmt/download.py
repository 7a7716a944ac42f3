"""packs.download: fetch packs into the packs directory.

A pack spec is one of (optionally followed by `=<version or git ref>`):

* `name`                 looked up in the pack index (its repo_url and version)
* `owner/repo`           https://github.com/owner/repo
* `https://...`, `git@...`, `gitlab@...`  a git URL, used as-is
* `file:///abs/path`     a local git repository (cloned) or plain directory (copied)

The pack is cloned into a temporary directory, checked (pack.yaml, ref, python_versions),
then moved to `<packs base path>/<ref>`, replacing any previous version. The result maps each
pack ref to "Success." or an error message.
"""

import hashlib
import os
import shutil
import subprocess
import tempfile

from st2common.runners.base_action import Action

from packs_common import (
    SYSTEM_PACK_NAMES,
    get_pack_from_index,
    packs_base_path,
    pack_ref_of,
    read_pack_meta,
    split_spec,
)

__all__ = ["DownloadGitRepoAction"]

SUCCESS = "Success."


class DownloadGitRepoAction(Action):
    def __init__(self, config=None, action_service=None):
        super(DownloadGitRepoAction, self).__init__(
            config=config, action_service=action_service
        )
        self.proxy_config = {
            k: os.environ.get(k, self.config.get(k) if self.config else None)
            for k in ("http_proxy", "https_proxy", "proxy_ca_bundle_path", "no_proxy")
        }

    def run(
        self,
        packs,
        abs_repo_base,
        verifyssl=True,
        force=False,
        dependency_list=None,
        checkout_submodules=False,
    ):
        if os.environ.get("ST2_CONTENT__PACKS_BASE_PATHS"):
            abs_repo_base = packs_base_path()
        os.makedirs(abs_repo_base, exist_ok=True)

        result = {}
        for spec in dependency_list or packs:
            ref, message = self._download(
                spec, abs_repo_base, verifyssl, force, checkout_submodules
            )
            result[ref] = message
        failed = {k: v for k, v in result.items() if v != SUCCESS}
        if failed:
            raise Exception("Failed to download packs: %s" % failed)
        return result

    def _resolve(self, spec):
        name, version = split_spec(spec)
        if name.startswith(("https://", "http://", "git@", "gitlab@", "file://")):
            return name, version
        if name.count("/") == 1:
            return "https://github.com/%s" % name, version
        pack = get_pack_from_index(name, self.proxy_config)
        if not pack:
            raise ValueError('No record of the "%s" pack in the index.' % name)
        return pack["repo_url"], version or pack.get("version")

    def _download(self, spec, abs_repo_base, verifyssl, force, checkout_submodules):
        try:
            url, version = self._resolve(spec)
        except Exception as e:
            return split_spec(spec)[0], str(e)

        lock = os.path.join(
            tempfile.gettempdir(), "%s.lock" % hashlib.md5(url.encode()).hexdigest()
        )
        if force and os.path.exists(lock):
            os.remove(lock)
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            return spec, "Timeout waiting to acquire lock for %s (use force)" % url
        os.close(fd)

        tmp = tempfile.mkdtemp(prefix="st2pack-")
        try:
            src = os.path.join(tmp, "pack")
            self._fetch(url, version, src, verifyssl, checkout_submodules)
            meta = read_pack_meta(src)
            ref = pack_ref_of(meta, None)
            if ref in SYSTEM_PACK_NAMES:
                return ref, 'Pack "%s" is a system pack and cannot be replaced.' % ref
            pythons = [str(v) for v in meta.get("python_versions") or []]
            if pythons and "3" not in pythons and not force:
                return ref, 'Pack "%s" requires Python 2 only (python_versions: %s).' % (
                    ref,
                    pythons,
                )
            shutil.rmtree(os.path.join(src, ".git"), ignore_errors=True)
            dest = os.path.join(abs_repo_base, ref)
            if os.path.isdir(dest):
                shutil.rmtree(dest)
            shutil.move(src, dest)
            self.logger.info('Installed pack "%s" from %s into %s', ref, url, dest)
            return ref, SUCCESS
        except Exception as e:
            return split_spec(spec)[0], str(e)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
            if os.path.exists(lock):
                os.remove(lock)

    def _fetch(self, url, version, dest, verifyssl, checkout_submodules):
        env = dict(os.environ, GIT_TERMINAL_PROMPT="0")
        if not verifyssl:
            env["GIT_SSL_NO_VERIFY"] = "true"
        if url.startswith("file://"):
            path = url[len("file://"):]
            if not os.path.isdir(os.path.join(path, ".git")):
                shutil.copytree(path, dest)
                return
        self._git(["clone", url, dest], env)
        if version:
            for candidate in ("origin/%s" % version, version, "v%s" % version):
                try:
                    self._git(["-C", dest, "checkout", "--quiet", candidate], env)
                    break
                except RuntimeError:
                    continue
            else:
                raise ValueError(
                    '"%s" is not a valid version, hash, tag or branch in %s.' % (version, url)
                )
        if checkout_submodules:
            self._git(["-C", dest, "submodule", "update", "--init", "--recursive"], env)

    @staticmethod
    def _git(args, env):
        proc = subprocess.run(
            ["git"] + args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        if proc.returncode != 0:
            raise RuntimeError(proc.stderr.decode("utf-8", "replace").strip())
