"""Storage: what the registry holds once (blobs are stored once per registry), what each group uses
alone, and what garbage collection would free after a delete.

The blobs of an image are its layers, its config, its manifest and, for multi-arch, the index.
Everything here runs on integer category codes with numpy: a crawl may have millions of rows.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ._frames import as_frame, codes

__all__ = ["blob_references", "reclaimable", "reclaimable_each", "storage_usage"]

_NEEDED = ["repository", "tag", "digest", "manifest_digest", "layer_digest", "layer_size"]
TOTAL = "(registry total)"
KINDS = np.array(["layer", "config", "manifest", "index"], dtype=object)


@dataclass(frozen=True)
class _Refs:
    """(repository, tag, blob) references as parallel code arrays, deduplicated."""

    repo: np.ndarray
    tag: np.ndarray
    digest: np.ndarray
    blob: np.ndarray
    kind: np.ndarray
    size: np.ndarray  # float64, NaN where unknown
    repo_names: np.ndarray
    tag_names: np.ndarray
    digest_names: np.ndarray
    blob_names: np.ndarray


def _refs(frame: Any) -> _Refs:
    layers = as_frame(frame, _NEEDED, "storage analysis", ("layers",))
    repo, repo_names = codes(layers["repository"])
    tag, tag_names = codes(layers["tag"])
    digest, digest_names = codes(layers["digest"])
    first = (layers["layer_index"] == 0).to_numpy() if "layer_index" in layers else np.ones(len(layers), bool)
    parts: list[tuple[int, str, str | None, np.ndarray]] = [
        (0, "layer_digest", "layer_size", np.ones(len(layers), bool))
    ]
    if "config_digest" in layers:
        parts.append((1, "config_digest", "config_size" if "config_size" in layers else None, first))
    if "manifest_size" in layers:
        parts.append((2, "manifest_digest", "manifest_size", first))
    if "digest_size" in layers:
        manifest_codes, manifest_names = codes(layers["manifest_digest"])
        index = first.copy()
        index[first] = digest_names[digest[first]] != manifest_names[manifest_codes[first]]
        parts.append((3, "digest", "digest_size", index))
    blob_parts, names_parts, offsets = [], [], []
    columns: dict[str, list[np.ndarray]] = {k: [] for k in ("repo", "tag", "digest", "kind", "size")}
    offset = 0
    for kind, column, size_column, mask in parts:
        part_codes, part_names = codes(layers[column])
        part_codes = part_codes[mask]
        blob_parts.append(np.where(part_codes >= 0, part_codes + offset, -1))
        names_parts.append(part_names)
        offsets.append(offset)
        offset += len(part_names)
        columns["repo"].append(repo[mask])
        columns["tag"].append(tag[mask])
        columns["digest"].append(digest[mask])
        columns["kind"].append(np.full(mask.sum(), kind, dtype="int8"))
        sizes = layers[size_column].to_numpy(dtype="float64", na_value=np.nan) if size_column else None
        columns["size"].append(sizes[mask] if sizes is not None else np.full(mask.sum(), np.nan))
    # one code space for every blob, whichever column named it
    unified, blob_names = (
        pd.factorize(np.concatenate(names_parts)) if names_parts else (np.array([]), np.array([]))
    )
    raw = np.concatenate(blob_parts)
    blob = np.where(raw >= 0, unified[np.maximum(raw, 0)], -1)
    work = pd.DataFrame({k: np.concatenate(v) for k, v in columns.items()})
    work["blob"] = blob
    work = work[work["blob"] >= 0]
    work = work[~work.duplicated(["repo", "tag", "blob"])]
    return _Refs(
        work["repo"].to_numpy(),
        work["tag"].to_numpy(),
        work["digest"].to_numpy(),
        work["blob"].to_numpy(),
        work["kind"].to_numpy(),
        work["size"].to_numpy(),
        repo_names,
        tag_names,
        digest_names,
        np.asarray(blob_names, dtype=object),
    )


def blob_references(frame: Any) -> pd.DataFrame:
    """One row per (repository, tag, blob): ``digest`` (what the tag names), ``blob``, ``kind``
    (index, manifest, config, layer) and ``size``. The basis of every storage figure."""
    r = _refs(frame)
    return pd.DataFrame(
        {
            "repository": pd.Categorical.from_codes(r.repo, categories=pd.Index(r.repo_names)),
            "tag": pd.Categorical.from_codes(r.tag, categories=pd.Index(r.tag_names)),
            "digest": pd.Categorical.from_codes(r.digest, categories=pd.Index(r.digest_names)),
            "blob": pd.Categorical.from_codes(r.blob, categories=pd.Index(r.blob_names)),
            "kind": pd.Categorical.from_codes(r.kind, categories=pd.Index(KINDS)),
            "size": pd.array(np.where(np.isnan(r.size), 0, r.size).astype("int64"), dtype="Int64"),
        }
    ).assign(size=lambda f: f["size"].mask(np.isnan(r.size)))


def _group_codes(r: _Refs, keys: list[str]) -> tuple[np.ndarray, pd.DataFrame]:
    """Group code per reference and the group labels, for ``by`` in repository/namespace/tag/digest."""
    columns: dict[str, tuple[np.ndarray, np.ndarray]] = {
        "repository": (r.repo, r.repo_names),
        "tag": (r.tag, r.tag_names),
        "digest": (r.digest, r.digest_names),
    }
    if "namespace" in keys:
        namespaces = np.array(
            [n.split("/")[0] if "/" in n else "library" for n in r.repo_names], dtype=object
        )
        ns_codes, ns_names = pd.factorize(namespaces)
        columns["namespace"] = (ns_codes[r.repo], np.asarray(ns_names, dtype=object))
    missing = [k for k in keys if k not in columns]
    if missing:
        raise ValueError(f"storage_usage cannot group by {missing}: use repository, namespace, tag or digest")
    frame = pd.DataFrame({k: columns[k][0] for k in keys})
    group = frame.groupby(keys, sort=False).ngroup().to_numpy()
    labels = frame.drop_duplicates(keys).sort_values(keys)
    order = frame.groupby(keys, sort=False).ngroup().loc[labels.index].to_numpy()
    named = pd.DataFrame({k: columns[k][1][labels[k].to_numpy()] for k in keys})
    named.index = order
    return group, named


def storage_usage(frame: Any, by: str | list[str] = "repository") -> pd.DataFrame:
    """Bytes per group (default: per repository), with a registry total row.

    - ``logical_bytes``: the sum over tags of everything each tag pulls (what naive tools report);
    - ``stored_bytes``: the group's distinct blobs, each counted once (shared layers once);
    - ``exclusive_bytes``: blobs no other group uses: what deleting the whole group would free;
    - ``shared_bytes``: stored minus exclusive.

    ``by`` may be ``"repository"``, ``"namespace"`` (the first path segment), ``"tag"``, ``"digest"``
    or a list of them. The total row's stored bytes are the registry's distinct blobs; its shared
    bytes are those used by more than one group.

    Example::

        result.layers.pipe(storage_usage).sort_values("stored_bytes", ascending=False)
    """
    r = _refs(frame)
    keys = [by] if isinstance(by, str) else list(by)
    group, labels = _group_codes(r, keys)
    n_groups = len(labels)
    size = np.nan_to_num(r.size)
    logical = np.bincount(group, weights=size, minlength=n_groups)
    distinct = ~pd.DataFrame({"g": group, "b": r.blob}).duplicated().to_numpy()
    g_d, b_d, s_d = group[distinct], r.blob[distinct], size[distinct]
    stored = np.bincount(g_d, weights=s_d, minlength=n_groups)
    owners = np.bincount(b_d, minlength=len(r.blob_names))
    exclusive = np.bincount(g_d, weights=s_d * (owners[b_d] == 1), minlength=n_groups)
    tag_pairs = ~pd.DataFrame({"r": r.repo, "t": r.tag}).duplicated().to_numpy()
    n_tags = np.bincount(group[tag_pairs], minlength=n_groups)
    n_blobs = np.bincount(g_d, minlength=n_groups)
    out = labels.copy()
    for name, values in (
        ("logical_bytes", logical),
        ("stored_bytes", stored),
        ("exclusive_bytes", exclusive),
        ("n_tags", n_tags),
        ("n_blobs", n_blobs),
    ):
        out[name] = values[out.index.to_numpy()]
    out["shared_bytes"] = out["stored_bytes"] - out["exclusive_bytes"]
    unique_blob = ~pd.Series(r.blob).duplicated().to_numpy()
    total: dict[str, Any] = {k: TOTAL for k in keys}
    total.update(
        logical_bytes=logical.sum(),
        stored_bytes=size[unique_blob].sum(),
        exclusive_bytes=exclusive.sum(),
        n_tags=int(tag_pairs.sum()),
        n_blobs=int(unique_blob.sum()),
    )
    total["shared_bytes"] = total["stored_bytes"] - total["exclusive_bytes"]
    out = pd.concat([out.reset_index(drop=True), pd.DataFrame([total])], ignore_index=True)
    columns = [*keys, "logical_bytes", "stored_bytes", "exclusive_bytes", "shared_bytes", "n_tags", "n_blobs"]
    out = out[columns]
    for column in columns[len(keys) :]:
        out[column] = out[column].round().astype("int64").astype("Int64")
    return out


def _deleted_mask(digests: Any, r: _Refs) -> np.ndarray:
    """Which references belong to a deleted (repository, digest)."""
    if isinstance(digests, pd.DataFrame):
        if not {"repository", "digest"} <= set(digests.columns):
            raise ValueError("reclaimable: a frame of digests needs 'repository' and 'digest' columns")
        pairs = list(zip(digests["repository"].astype(str), digests["digest"].astype(str), strict=True))
        bare: list[str] = []
    else:
        items = [digests] if isinstance(digests, str) else list(digests)
        bare = [d for d in items if isinstance(d, str)]
        pairs = [(str(p[0]), str(p[1])) for p in items if not isinstance(p, str)]
    digest_code = {name: i for i, name in enumerate(r.digest_names)}
    repo_code = {name: i for i, name in enumerate(r.repo_names)}
    # a bare digest means: deleted from every repository where a tag names it
    mask = np.isin(r.digest, [digest_code[d] for d in bare if d in digest_code])
    width = len(r.digest_names) + 1
    keys = [repo_code[p] * width + digest_code[d] for p, d in pairs if p in repo_code and d in digest_code]
    if keys:
        mask |= np.isin(r.repo.astype("int64") * width + r.digest, keys)
    return mask


def reclaimable(
    frame: Any,
    digests: Iterable[str] | Iterable[tuple[str, str]] | pd.DataFrame | str,
    *,
    delete_untagged: bool = True,
) -> pd.DataFrame:
    """The blobs garbage collection would free if these manifests were deleted.

    ``digests``: digests (deleted wherever a tag names them), ``(repository, digest)`` pairs, or a
    frame with those columns (e.g. the output of :func:`stale`). A mark-and-sweep over what remains:
    every remaining tag marks its digest, the index children, their configs and layers; a blob
    still marked anywhere in the registry frees nothing. Deleting a manifest deletes all its tags.

    The children of a deleted index become untagged manifests: ``garbage-collect --delete-untagged``
    frees them (``delete_untagged=True``, the default); a plain ``garbage-collect`` keeps them and
    only the index itself goes (``delete_untagged=False``).

    Returns one row per freed blob: ``blob, kind, size`` and ``repositories`` whose deleted
    manifests used it. ``reclaimable(...)["size"].sum()`` is the bytes freed.

    Example::

        reclaimable(result.layers, stale(result.images))["size"].sum()
    """
    return _reclaim(_refs(frame), digests, delete_untagged)


def reclaimable_each(
    frame: Any, pairs: Iterable[tuple[str, str]], *, delete_untagged: bool = True
) -> list[int]:
    """Bytes garbage collection would free for each ``(repository, digest)`` deleted on its own."""
    r = _refs(frame)
    return [int(_reclaim(r, [pair], delete_untagged)["size"].sum()) for pair in pairs]


def _reclaim(r: _Refs, digests: Any, delete_untagged: bool) -> pd.DataFrame:
    deleted = _deleted_mask(digests, r)
    keeps = ~deleted
    if not delete_untagged:
        # A child manifest stays in its repository after its index is deleted, with its config and layers.
        width = len(r.digest_names) + 1
        root = r.repo.astype("int64") * width + r.digest
        index_roots = np.unique(root[r.kind == 3])
        keeps |= deleted & np.isin(root, index_roots) & (r.kind != 3)
    marked = np.zeros(len(r.blob_names), dtype=bool)
    marked[r.blob[keeps]] = True
    gone = deleted & ~marked[r.blob]
    rows = pd.DataFrame(
        {"blob": r.blob[gone], "kind": r.kind[gone], "size": r.size[gone], "repo": r.repo[gone]}
    )
    repositories = rows.groupby("blob")["repo"].agg(lambda s: sorted({str(r.repo_names[c]) for c in s}))
    first = rows.drop_duplicates("blob").set_index("blob")
    out = pd.DataFrame(
        {
            "blob": r.blob_names[first.index.to_numpy()].astype(str),
            "kind": KINDS[first["kind"].to_numpy()].astype(str),
            "size": pd.array(first["size"].to_numpy(), dtype="Float64").round().astype("Int64"),
            "repositories": repositories.reindex(first.index).to_numpy(),
        }
    )
    return out.sort_values(["kind", "blob"]).reset_index(drop=True)
