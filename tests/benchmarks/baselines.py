"""Baselines the crawl benchmarks compare against, run in the same process as our crawl.

``dxf_crawl``: python-dxf (https://github.com/davedoesdev/dxf), a registry client nobody here
wrote, walked the way its API walks a registry: list repositories, list each one's tags, get each
tag's manifest (a multi-arch one's children too, as ``get_manifest`` returns them) and each
manifest's config blob, one request at a time. python-dxf checks a manifest's
``Docker-Content-Digest`` against its body and a blob's digest against its bytes, as we do.
"""

from __future__ import annotations

import json
from typing import Any

import requests
from dxf import DXF, DXFBase


def dxf_crawl(url: str) -> dict[str, Any]:
    """Crawl the registry at ``url`` (``http://host:port/v2/``) with python-dxf; count requests
    (each HTTP exchange) and layers (per tag, per image, as our ``layers`` frame has rows)."""
    host = url.split("://", 1)[1].split("/", 1)[0]
    requests_made = 0

    def count(response: requests.Response, *args: Any, **kwargs: Any) -> None:
        nonlocal requests_made
        requests_made += 1

    base = DXFBase(host, insecure=url.startswith("http://"))
    layers = 0
    with base:  # one requests session (keep-alive) for the whole walk
        base._sessions[0].hooks["response"].append(count)
        for name in base.list_repos(batch_size=1000):
            repo = DXF.from_base(base, name)
            for tag in repo.list_aliases(batch_size=1000):
                found = repo.get_manifest(tag)  # a multi-arch tag: {platform: manifest} of its children
                for text in found.values() if isinstance(found, dict) else [found]:
                    manifest = json.loads(text)
                    b"".join(repo.pull_blob(manifest["config"]["digest"]))  # digest checked while read
                    layers += len(manifest["layers"])
    return {"requests": requests_made, "layers": layers}
