"""Images in use: references read from ``kubectl get pods -A -o json``, a CSV keep-list or a frame,
matched to a crawl's digests so that a retention policy never proposes what is running.

A reference names a repository and a tag and/or a digest (a pod's ``imageID`` carries the digest it
runs, which wins over the tag it was started with; both are kept). Example::

    refs = in_use(Path("pods.json"))           # kubectl get pods -A -o json > pods.json
    stale(result.images, keep=refs)           # explain: "in use by prod/web-7d9f (as team/web:v3)"
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from ..client.errors import InvalidReference
from ..client.reference import parse_reference

__all__ = ["REFERENCE_COLUMNS", "InUseSource", "in_use", "in_use_by", "split_image"]

REFERENCE_COLUMNS = ["registry", "repository", "tag", "digest", "used_by", "image"]
_DOCKER_HUB = {"docker.io", "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com"}
_SCHEMES = ("docker-pullable://", "docker://", "containerd://", "cri-o://")

InUseSource = pd.DataFrame | os.PathLike[str] | Mapping[str, Any]


def _host(host: str | None) -> str | None:
    if host is None:
        return None
    lowered = host.lower()
    return "docker.io" if lowered in _DOCKER_HUB else lowered


def split_image(
    text: str, *, default_registry: str | None = "docker.io"
) -> tuple[str | None, str, str | None, str | None]:
    """``"host:5000/team/app:v1@sha256:..."`` -> (registry, repository, tag, digest), as docker reads it:
    the first part is a host when it has a ``.`` or ``:`` or is ``localhost``; Docker Hub's one-part
    names get ``library/``. Without a host the registry is ``default_registry``.

    >>> split_image("nginx:1.25")
    ('docker.io', 'library/nginx', '1.25', None)
    >>> split_image("127.0.0.1:5000/team/app:v1", default_registry=None)
    ('127.0.0.1:5000', 'team/app', 'v1', None)
    """
    value = text.strip()
    for scheme in _SCHEMES:
        if value.startswith(scheme):
            value = value[len(scheme) :]
    first, slash, rest = value.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost"):
        registry: str | None = _host(first)
    else:
        registry, rest = default_registry, value
    ref = parse_reference(rest)
    name = ref.name
    if registry == "docker.io" and "/" not in name:
        name = f"library/{name}"
    return registry, name, ref.tag, ref.digest


def _ref(
    registry: str | None, repository: str, tag: str | None, digest: str | None, used_by: str, image: str
) -> dict[str, Any]:
    return dict(zip(REFERENCE_COLUMNS, (registry, repository, tag, digest, used_by, image), strict=True))


def _pods(data: Mapping[str, Any]) -> list[dict[str, Any]]:
    """References of every container of every pod in kubectl's JSON (a List, or one Pod)."""
    items = data.get("items") if data.get("kind") != "Pod" else [data]
    if not isinstance(items, list):
        raise ValueError("not kubectl pod JSON: expected 'kubectl get pods -A -o json' output (items)")
    rows: list[dict[str, Any]] = []
    for pod in items:
        if not isinstance(pod, dict):
            continue
        meta = pod.get("metadata") or {}
        who = f"{meta.get('namespace', 'default')}/{meta.get('name', '?')}"
        spec, status = pod.get("spec") or {}, pod.get("status") or {}
        images: dict[str, str] = {}
        for key in ("initContainers", "containers", "ephemeralContainers"):
            for container in spec.get(key) or []:
                if isinstance(container, dict) and isinstance(container.get("image"), str):
                    images[str(container.get("name"))] = container["image"]
        ids: dict[str, tuple[str, str]] = {}
        for key in ("initContainerStatuses", "containerStatuses", "ephemeralContainerStatuses"):
            for state in status.get(key) or []:
                if isinstance(state, dict):
                    ids[str(state.get("name"))] = (
                        str(state.get("image") or ""),
                        str(state.get("imageID") or ""),
                    )
        for name in sorted(set(images) | set(ids)):
            image = images.get(name) or ids.get(name, ("", ""))[0]
            image_id = ids.get(name, ("", ""))[1]
            rows.extend(_container_refs(image, image_id, f"{who} ({name})" if len(images) > 1 else who))
    return rows


def _container_refs(image: str, image_id: str, who: str) -> list[dict[str, Any]]:
    try:
        registry, repository, tag, digest = split_image(image)
    except (InvalidReference, ValueError):
        return []
    out = [_ref(registry, repository, tag, digest, who, image)]
    running = image_id
    for scheme in _SCHEMES:
        running = running.removeprefix(scheme)
    if "@" in running:
        try:
            id_registry, id_repository, _, id_digest = split_image(running)
        except (InvalidReference, ValueError):
            return out
        out.append(_ref(id_registry, id_repository, None, id_digest, who, image))
    elif running.startswith("sha256:"):
        # docker's image ID without a repo digest: the config digest of what runs
        out.append(_ref(registry, repository, None, running, who, image))
    return out


def _from_frame(frame: pd.DataFrame, what: str) -> list[dict[str, Any]]:
    columns = set(frame.columns)
    text_column = next((c for c in ("image", "reference") if c in columns), None)
    if text_column is None and "repository" not in columns:
        raise ValueError(
            f"{what}: needs an 'image' (or 'reference') column, or 'repository' with 'tag'/'digest'"
        )
    rows = []
    for record in frame.to_dict("records"):
        used_by = record.get("used_by") or record.get("reason") or what
        if text_column is not None:
            text = record.get(text_column)
            if not isinstance(text, str) or not text.strip():
                continue
            try:
                registry, repository, tag, digest = split_image(text, default_registry=None)
            except InvalidReference as exc:
                raise ValueError(f"{what}: {exc}") from None
            image = text
        else:
            registry = _host(record.get("registry")) if isinstance(record.get("registry"), str) else None
            repository = str(record["repository"])
            tag = record.get("tag") if isinstance(record.get("tag"), str) and record.get("tag") else None
            digest = (
                record.get("digest")
                if isinstance(record.get("digest"), str) and record.get("digest")
                else None
            )
            image = repository + (f":{tag}" if tag else "") + (f"@{digest}" if digest else "")
        rows.append(_ref(registry, repository, tag, digest, str(used_by), image))
    return rows


def in_use(source: InUseSource | Sequence[InUseSource]) -> pd.DataFrame:
    """References in use, one row each: ``registry`` (None: any), ``repository``, ``tag``, ``digest``,
    ``used_by``, ``image``.

    ``source``: a path (``pathlib.Path``) to kubectl JSON (``kubectl get pods -A -o json``) or to a
    CSV keep-list (an ``image`` column, or ``repository`` with ``tag``/``digest``; optional
    ``used_by``), the parsed kubectl JSON, a DataFrame with those columns, or a list of these.
    Images in kubectl output without a host are Docker Hub's, as the kubelet reads them; in a keep-list
    they match any registry.
    """
    rows: list[dict[str, Any]] = []
    sources: Iterable[Any] = source if isinstance(source, (list, tuple)) else [source]
    for item in sources:
        if isinstance(item, pd.DataFrame):
            rows.extend(_from_frame(item, "keep-list"))
        elif isinstance(item, Mapping):
            rows.extend(_pods(item))
        elif isinstance(item, os.PathLike):
            path = Path(item)
            text = path.read_text()
            if text.lstrip().startswith("{"):
                try:
                    data = json.loads(text)
                except ValueError as exc:
                    raise ValueError(f"{path}: not valid JSON: {exc}") from None
                rows.extend(_pods(data))
            else:
                frame = pd.read_csv(path, dtype=str, keep_default_na=False)
                rows.extend(_from_frame(frame, path.name))
        else:
            raise TypeError(
                f"in use: expected a Path (kubectl JSON or CSV), kubectl JSON, a DataFrame or a list, "
                f"got {type(item).__name__}"
            )
    out = pd.DataFrame(rows, columns=REFERENCE_COLUMNS)
    return out.drop_duplicates().reset_index(drop=True)


def in_use_by(source: pd.DataFrame, references: pd.DataFrame) -> dict[tuple[str, str], list[str]]:
    """For a crawl frame, which (repository, digest) each reference keeps: ``{(repo, digest): [who, ...]}``.

    A digest reference matches the digest, a platform manifest or an image config of that repository;
    a tag reference matches the digest the tag points to in the crawl. Hosts must match when both
    the reference and the crawl name one.
    """
    keys: list[pd.DataFrame] = []
    base = source[[c for c in ("registry", "repository", "tag", "digest") if c in source.columns]].astype(
        object
    )
    base = base.assign(registry=base["registry"].map(_host) if "registry" in base else None)
    for column, kind in (
        ("digest", "digest"),
        ("manifest_digest", "digest"),
        ("config_digest", "digest"),
        ("tag", "tag"),
    ):
        if column in source.columns:
            part = base.assign(kind=kind, key=source[column].astype(object).to_numpy())
            keys.append(part[["registry", "repository", "digest", "kind", "key"]])
    if not keys or references.empty:
        return {}
    lookup = pd.concat(keys, ignore_index=True).dropna(subset=["key"]).drop_duplicates()
    refs = references.astype(object)
    wanted = pd.concat(
        [
            refs[refs["digest"].notna()].assign(kind="digest", key=refs["digest"]),
            refs[refs["tag"].notna()].assign(kind="tag", key=refs["tag"]),
        ],
        ignore_index=True,
    )
    hits = wanted.merge(lookup, on=["repository", "kind", "key"], suffixes=("_ref", ""))
    same_host = (
        hits["registry_ref"].isna() | hits["registry"].isna() | (hits["registry_ref"] == hits["registry"])
    )
    hits = hits[same_host]
    out: dict[tuple[str, str], list[str]] = {}
    for repository, digest, who, image in hits[["repository", "digest", "used_by", "image"]].itertuples(
        index=False
    ):
        label = f"{who} (as {image})" if image else str(who)
        entry = out.setdefault((str(repository), str(digest)), [])
        if label not in entry:
            entry.append(label)
    return {key: sorted(value) for key, value in out.items()}
