"""Helpers shared by the packs pack's Python actions (on PYTHONPATH via actions/lib).

Paths and URLs come from the environment the action runner sets, using the st2.conf
section/key naming (ST2_<SECTION>__<KEY>), with StackStorm's defaults:

* ST2_SYSTEM__BASE_PATH              /opt/stackstorm
* ST2_CONTENT__PACKS_BASE_PATHS      first entry is where packs get installed
                                     (default <base_path>/packs)
* ST2_CONTENT__INDEX_URL             comma separated pack index URLs
                                     (default https://index.stackstorm.org/v1/index.json)
* ST2_ACTION_API_URL, ST2_ACTION_AUTH_TOKEN  API endpoint and token of the execution
"""

import json
import os
import re
import ssl
import urllib.error
import urllib.parse
import urllib.request

import yaml

__all__ = [
    "SYSTEM_PACK_NAMES",
    "PACK_REF_RE",
    "base_path",
    "packs_base_path",
    "virtualenvs_path",
    "read_pack_meta",
    "pack_ref_of",
    "split_spec",
    "fetch_index",
    "search_index",
    "get_pack_from_index",
    "ApiClient",
]

# Packs that can be neither removed nor replaced by a user pack.
SYSTEM_PACK_NAMES = ("core", "packs", "linux", "chatops", "default")

PACK_REF_RE = re.compile(r"^[a-z0-9_]+$")

DEFAULT_INDEX_URL = "https://index.stackstorm.org/v1/index.json"


def base_path():
    return os.environ.get("ST2_SYSTEM__BASE_PATH", "/opt/stackstorm")


def packs_base_path():
    paths = os.environ.get("ST2_CONTENT__PACKS_BASE_PATHS", "")
    for p in paths.split(":"):
        if p.strip():
            return p.strip()
    return os.path.join(base_path(), "packs")


def virtualenvs_path():
    return os.environ.get(
        "ST2_SYSTEM__VIRTUALENVS_PATH", os.path.join(base_path(), "virtualenvs")
    )


def read_pack_meta(pack_dir):
    """Return the parsed pack.yaml of `pack_dir` (a dict), or raise ValueError."""
    path = os.path.join(pack_dir, "pack.yaml")
    if not os.path.isfile(path):
        raise ValueError('"%s" is not a pack: pack.yaml is missing' % pack_dir)
    with open(path, "r") as fp:
        meta = yaml.safe_load(fp) or {}
    if not isinstance(meta, dict):
        raise ValueError("%s: expected a mapping" % path)
    if "version" in meta and not isinstance(meta["version"], str):
        meta["version"] = str(meta["version"])
    return meta


def pack_ref_of(meta, dir_name=None):
    """Resolve a pack ref the way StackStorm does: ref, then directory name, then name."""
    for candidate in (meta.get("ref"), dir_name, meta.get("name")):
        if candidate and PACK_REF_RE.match(candidate):
            return candidate
    raise ValueError(
        'Pack "%s" has no valid ref: set "ref" in pack.yaml (^[a-z0-9_]+$)'
        % (meta.get("name") or dir_name)
    )


def split_spec(spec):
    """`name=1.2.0` -> ("name", "1.2.0"); a `=` inside a URL's path is not a version."""
    if "=" in spec:
        head, _, version = spec.rpartition("=")
        if head and "/" not in version:
            return head, version
    return spec, None


def _urlopen(url, proxy_config=None, verify=True, data=None, headers=None, method=None):
    handlers = []
    if proxy_config:
        proxies = {}
        if proxy_config.get("http_proxy"):
            proxies["http"] = proxy_config["http_proxy"]
        if proxy_config.get("https_proxy"):
            proxies["https"] = proxy_config["https_proxy"]
        if proxies:
            handlers.append(urllib.request.ProxyHandler(proxies))
    context = ssl.create_default_context(
        cafile=(proxy_config or {}).get("proxy_ca_bundle_path") or None
    )
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    handlers.append(urllib.request.HTTPSHandler(context=context))
    opener = urllib.request.build_opener(*handlers)
    req = urllib.request.Request(url, data=data, headers=headers or {}, method=method)
    return opener.open(req, timeout=60)


def fetch_index(proxy_config=None):
    """Merge every configured index (later ones win). Returns (packs, errors)."""
    urls = os.environ.get("ST2_CONTENT__INDEX_URL", DEFAULT_INDEX_URL)
    packs, errors = {}, []
    for url in [u.strip() for u in urls.split(",") if u.strip()]:
        try:
            with _urlopen(url, proxy_config) as resp:
                index = json.loads(resp.read().decode("utf-8"))
        except (urllib.error.URLError, ValueError, OSError) as e:
            errors.append({"url": url, "message": str(e)})
            continue
        if not isinstance(index, dict) or "packs" not in index:
            errors.append({"url": url, "message": "The index is malformed (no \"packs\")."})
            continue
        packs.update(index["packs"])
    return packs, errors


def search_index(query, proxy_config=None):
    """Packs whose name, keywords or description contain `query` (case-insensitive)."""
    packs, _ = fetch_index(proxy_config)
    q = query.lower()
    matches = []
    for name, pack in sorted(packs.items()):
        fields = [name, pack.get("ref") or "", pack.get("description") or ""]
        fields.extend(pack.get("keywords") or [])
        if any(q in str(f).lower() for f in fields):
            matches.append(pack)
    return matches


def get_pack_from_index(name, proxy_config=None):
    packs, _ = fetch_index(proxy_config)
    if name in packs:
        return packs[name]
    for pack in packs.values():
        if pack.get("ref") == name:
            return pack
    return None


class ApiClient(object):
    """Minimal client of the platform's REST API, authenticated as the execution."""

    def __init__(self, api_url=None, token=None):
        self.api_url = (api_url or os.environ.get("ST2_ACTION_API_URL", "")).rstrip("/")
        self.token = token or os.environ.get("ST2_ACTION_AUTH_TOKEN")
        if not self.api_url:
            raise ValueError("ST2_ACTION_API_URL is not set: cannot reach the API")

    def request(self, method, path, body=None):
        headers = {"Content-Type": "application/json"}
        if self.token:
            headers["X-Auth-Token"] = self.token
        data = json.dumps(body).encode("utf-8") if body is not None else None
        try:
            with _urlopen(
                self.api_url + path, data=data, headers=headers, method=method
            ) as resp:
                raw = resp.read().decode("utf-8")
        except urllib.error.HTTPError as e:
            detail = e.read().decode("utf-8", "replace")
            try:
                detail = json.loads(detail).get("faultstring", detail)
            except ValueError:
                pass
            raise RuntimeError("%s %s failed: %s %s" % (method, path, e.code, detail))
        return json.loads(raw) if raw.strip() else None

    def list(self, resource, **filters):
        query = urllib.parse.urlencode({k: v for k, v in filters.items() if v is not None})
        return self.request("GET", "/%s%s" % (resource, "?" + query if query else "")) or []

    def delete(self, resource, ref_or_id):
        return self.request("DELETE", "/%s/%s" % (resource, urllib.parse.quote(ref_or_id)))
