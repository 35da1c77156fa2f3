"""Storage: what the registry holds once (blobs are stored once per registry), what each group uses
alone, and what garbage collection would free after a delete.

The blobs of an image are its layers, its config, its manifest and, for multi-arch, the index.
Everything here runs on integer category codes with numpy: a crawl may have millions of rows.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from ..client.mediatypes import FOREIGN_LAYER_TYPES, INDEX_TYPES
from ..dask import is_dask
from ._frames import as_frame, codes

__all__ = ["blob_references", "reclaimable", "reclaimable_each", "storage_usage"]

_NEEDED = ["repository", "tag", "digest", "manifest_digest", "layer_digest", "layer_size"]
TOTAL = "(registry total)"
KINDS = np.array(["layer", "config", "manifest", "index", "nested-index", "foreign-layer"], dtype=object)
LAYER, CONFIG, MANIFEST, INDEX, NESTED_INDEX, FOREIGN = range(6)


# The parallel arrays of _Refs that have one value per reference.
_PER_REFERENCE = (
    "repo",
    "tag",
    "digest",
    "blob",
    "kind",
    "size",
    "known",
    "owner",
    "parent",
    "top",
    "image_kind",
)


@dataclass(frozen=True)
class _Refs:
    """Blob references as parallel int64 code arrays: who names which blob.

    One row per (repository, tag, blob, owner, parent): ``owner`` is the manifest revision whose
    content the blob is (an image manifest for its config and layers and its own bytes; the tagged
    index for the index's bytes), ``parent`` the index that lists a manifest (``-1``: none). Both
    are codes into ``rev_names``. Distribution's garbage collector marks from revisions exactly so:
    a revision marks its own blob and, for an image manifest, its config and layers; an index marks
    the blobs of the manifests it lists, not their content. ``first`` picks one row per
    (repository, tag, blob), what a tag pulls.

    Foreign layers are references too (kind ``FOREIGN``), but the registry does not store them:
    every byte figure leaves them out and reports them apart.
    """

    repo: np.ndarray
    tag: np.ndarray
    digest: np.ndarray
    blob: np.ndarray
    kind: np.ndarray
    size: np.ndarray  # int64 bytes, 0 where unknown (exact: sizes are never summed as floats)
    known: np.ndarray  # False where the size is unknown (schema1 layers)
    owner: np.ndarray
    parent: np.ndarray
    top: np.ndarray  # the tag's digest as a revision code
    image_kind: np.ndarray  # what the manifest owning the blob is (image, signature, ...): kind_names
    first: np.ndarray
    repo_names: np.ndarray
    tag_names: np.ndarray
    digest_names: np.ndarray
    blob_names: np.ndarray
    rev_names: np.ndarray
    kind_names: np.ndarray

    @property
    def stored(self) -> np.ndarray:
        return self.kind != FOREIGN

    def per_tag(self) -> _Refs:
        """One row per (repository, tag, blob): what each tag pulls, whoever owns the blob."""
        rows = self.first
        arrays = (*_PER_REFERENCE, "first")
        return replace(self, **{name: getattr(self, name)[rows] for name in arrays})


def _unified(frame: pd.DataFrame, columns: list[str]) -> tuple[list[np.ndarray], np.ndarray]:
    """Codes of several digest columns in one code space (-1 where missing) and its names."""
    parts = [codes(frame[c]) for c in columns]
    names = np.concatenate([names for _, names in parts]) if parts else np.array([], dtype=object)
    unified, uniques = pd.factorize(names)
    out, offset = [], 0
    for part_codes, part_names in parts:
        present = part_codes >= 0
        mapped = np.full(len(part_codes), -1, dtype="int64")
        mapped[present] = unified[part_codes[present] + offset]
        out.append(mapped)
        offset += len(part_names)
    return out, np.asarray(uniques, dtype=object)


def _refs(frame: Any) -> _Refs:
    layers = as_frame(frame, _NEEDED, "storage analysis", ("layers",))
    n = len(layers)
    repo, repo_names = codes(layers["repository"])
    tag, tag_names = codes(layers["tag"])
    digest, digest_names = codes(layers["digest"])
    # The first row of each image: its base layer, or the one row of an image without layers.
    first = (
        layers["layer_index"].fillna(0).to_numpy(dtype="int64") == 0
        if "layer_index" in layers
        else np.ones(n, bool)
    )
    if "layer_foreign" in layers:
        foreign = layers["layer_foreign"].to_numpy(dtype=bool)
    elif "layer_media_type" in layers:
        foreign = layers["layer_media_type"].astype(object).isin(FOREIGN_LAYER_TYPES).to_numpy()
    else:
        foreign = np.zeros(n, bool)
    rev_columns = ["digest", "manifest_digest"] + (["parent_digest"] if "parent_digest" in layers else [])
    revs, rev_names = _unified(layers, rev_columns)
    top, manifest = revs[0], revs[1]
    # Without a recorded parent (frames saved before parent_digest, hand-built records) a manifest
    # under another digest is a child of the tagged index.
    parent = np.where(manifest != top, top, -1)
    if len(revs) > 2:
        parent = np.where(revs[2] >= 0, revs[2], parent)
    none = np.full(n, -1)
    everywhere = np.ones(n, bool)
    if "kind" in layers:
        image_kind, kind_names = codes(layers["kind"])
    else:
        image_kind, kind_names = np.zeros(n, "int64"), np.array(["image"], dtype=object)
    # an index's own bytes are the index's, whatever its children are
    kind_names = np.append(kind_names, "index") if "index" not in set(kind_names) else kind_names
    index_kind = np.full(n, list(kind_names).index("index"))
    # (kind, blob column, size column, rows, owner, parent, image kind)
    parts: list[tuple[np.ndarray, str, str | None, np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = [
        (
            np.where(foreign, FOREIGN, LAYER),
            "layer_digest",
            "layer_size",
            everywhere,
            manifest,
            none,
            image_kind,
        )
    ]
    if "config_digest" in layers:
        size_column = "config_size" if "config_size" in layers else None
        parts.append((np.full(n, CONFIG), "config_digest", size_column, first, manifest, none, image_kind))
    if "manifest_size" in layers:
        nested = (
            layers["manifest_media_type"].astype(object).isin(INDEX_TYPES).to_numpy()
            if "manifest_media_type" in layers
            else np.zeros(n, bool)
        )
        kind = np.where(nested, NESTED_INDEX, MANIFEST)
        parts.append((kind, "manifest_digest", "manifest_size", first, manifest, parent, image_kind))
    if "digest_size" in layers:
        index_rows = first & (top != manifest)
        parts.append((np.full(n, INDEX), "digest", "digest_size", index_rows, top, none, index_kind))
    blob_codes, blob_names = _unified(layers, [part[1] for part in parts])
    columns: dict[str, list[np.ndarray]] = {k: [] for k in _PER_REFERENCE}
    for (kind, _, size_column, mask, owner, parent_of, owner_kind), blob in zip(
        parts, blob_codes, strict=True
    ):
        if size_column is None:
            sizes, known = np.zeros(n, "int64"), np.zeros(n, bool)
        else:
            values = layers[size_column]
            known = values.notna().to_numpy()
            sizes = values.to_numpy(dtype="int64", na_value=0)
        for key, values_ in (
            ("repo", repo),
            ("tag", tag),
            ("digest", digest),
            ("blob", blob),
            ("kind", kind),
            ("size", sizes),
            ("known", known),
            ("owner", owner),
            ("parent", parent_of),
            ("top", top),
            ("image_kind", owner_kind),
        ):
            columns[key].append(values_[mask])
    work = pd.DataFrame({k: np.concatenate(v) for k, v in columns.items()})
    work = work[work["blob"] >= 0]
    work = work[~work.duplicated(["repo", "tag", "blob", "owner", "parent"])]
    first_ref = ~work.duplicated(["repo", "tag", "blob"]).to_numpy()
    return _Refs(
        **{k: work[k].to_numpy() for k in columns},
        first=first_ref,
        repo_names=repo_names,
        tag_names=tag_names,
        digest_names=digest_names,
        blob_names=blob_names,
        rev_names=rev_names,
        kind_names=kind_names,
    )


def blob_references(frame: Any) -> pd.DataFrame:
    """One row per (repository, tag, blob): ``digest`` (what the tag names), ``blob``, ``kind``
    (index, nested-index, manifest, config, layer, foreign-layer) and ``size``. The basis of every
    storage figure; ``foreign-layer`` rows are blobs the registry does not store."""
    r = _refs(frame)
    f = r.first
    return pd.DataFrame(
        {
            "repository": pd.Categorical.from_codes(r.repo[f], categories=pd.Index(r.repo_names)),
            "tag": pd.Categorical.from_codes(r.tag[f], categories=pd.Index(r.tag_names)),
            "digest": pd.Categorical.from_codes(r.digest[f], categories=pd.Index(r.digest_names)),
            "blob": pd.Categorical.from_codes(r.blob[f], categories=pd.Index(r.blob_names)),
            "kind": pd.Categorical.from_codes(r.kind[f], categories=pd.Index(KINDS)),
            "size": pd.array(r.size[f], dtype="Int64"),
        }
    ).assign(size=lambda frame_: frame_["size"].mask(~r.known[f]))


def _sum_by(group: np.ndarray, values: np.ndarray, n_groups: int) -> np.ndarray:
    """Exact int64 sums of ``values`` per group code (np.bincount would sum in float64)."""
    if not len(group):
        return np.zeros(n_groups, "int64")
    sums = pd.Series(values, dtype="int64").groupby(group).sum()
    out = np.zeros(n_groups, "int64")
    out[sums.index.to_numpy()] = sums.to_numpy()
    return out


def _group_codes(r: _Refs, keys: list[str]) -> tuple[np.ndarray, pd.DataFrame]:
    """Group code per reference and the group labels, for ``by`` in repository/namespace/tag/digest."""
    columns: dict[str, tuple[np.ndarray, np.ndarray]] = {
        "repository": (r.repo, r.repo_names),
        "tag": (r.tag, r.tag_names),
        "digest": (r.digest, r.digest_names),
        "kind": (r.image_kind, r.kind_names),
    }
    if "namespace" in keys:
        namespaces = np.array(
            [n.split("/")[0] if "/" in n else "library" for n in r.repo_names], dtype=object
        )
        ns_codes, ns_names = pd.factorize(namespaces)
        columns["namespace"] = (ns_codes[r.repo], np.asarray(ns_names, dtype=object))
    missing = [k for k in keys if k not in columns]
    if missing:
        raise ValueError(
            f"storage_usage cannot group by {missing}: use repository, namespace, tag, digest or kind"
        )
    frame = pd.DataFrame({k: columns[k][0] for k in keys})
    group = frame.groupby(keys, sort=False).ngroup().to_numpy()
    labels = frame.drop_duplicates(keys).sort_values(keys)
    order = frame.groupby(keys, sort=False).ngroup().loc[labels.index].to_numpy()
    named = pd.DataFrame({k: columns[k][1][labels[k].to_numpy()] for k in keys})
    named.index = order
    return group, named


def storage_usage(frame: Any, by: str | list[str] = "repository") -> pd.DataFrame:
    """Bytes per group (default: per repository), with a registry total row.

    - ``logical_bytes``: the sum over tags of everything each tag pulls from the registry (what
      naive tools report);
    - ``stored_bytes``: the group's distinct blobs, each counted once (shared layers once);
    - ``exclusive_bytes``: blobs no other group uses: what deleting the whole group would free;
    - ``shared_bytes``: stored minus exclusive;
    - ``foreign_bytes``: distinct foreign / non-distributable layers (Windows base layers) the
      images need but the registry does not store: in no other column.

    ``by`` may be ``"repository"``, ``"namespace"`` (the first path segment), ``"tag"``, ``"digest"``,
    ``"kind"`` (images apart from signatures, attestations, SBOMs, Helm charts and other artifacts;
    an index's own bytes are ``index``) or a list of them. The total row's stored bytes are the
    registry's distinct blobs; its shared bytes are those used by more than one group.

    Example::

        result.layers.pipe(storage_usage).sort_values("stored_bytes", ascending=False)
    """
    if is_dask(frame):  # a dask frame or DaskCrawl: the same answer, partition by partition
        from ..dask.analysis import storage_usage as dask_storage_usage

        return dask_storage_usage(frame, by)
    r = _refs(frame).per_tag()
    keys = [by] if isinstance(by, str) else list(by)
    group, labels = _group_codes(r, keys)
    n_groups = len(labels)
    stored_ref = r.stored
    size = np.where(stored_ref, r.size, 0)
    foreign_size = np.where(stored_ref, 0, r.size)
    logical = _sum_by(group, size, n_groups)
    distinct = ~pd.DataFrame({"g": group, "b": r.blob}).duplicated().to_numpy()
    g_d, b_d = group[distinct], r.blob[distinct]
    stored = _sum_by(g_d, size[distinct], n_groups)
    foreign = _sum_by(g_d, foreign_size[distinct], n_groups)
    owners = np.bincount(b_d, minlength=len(r.blob_names))
    exclusive = _sum_by(g_d, size[distinct] * (owners[b_d] == 1), n_groups)
    tag_pairs = ~pd.DataFrame({"r": r.repo, "t": r.tag}).duplicated().to_numpy()
    n_tags = np.bincount(group[tag_pairs], minlength=n_groups)
    n_blobs = np.bincount(g_d[stored_ref[distinct]], minlength=n_groups)
    out = labels.copy()
    for name, values in (
        ("logical_bytes", logical),
        ("stored_bytes", stored),
        ("exclusive_bytes", exclusive),
        ("foreign_bytes", foreign),
        ("n_tags", n_tags),
        ("n_blobs", n_blobs),
    ):
        out[name] = values[out.index.to_numpy()]
    out["shared_bytes"] = out["stored_bytes"] - out["exclusive_bytes"]
    unique_blob = ~pd.Series(r.blob).duplicated().to_numpy()
    total: dict[str, Any] = {k: TOTAL for k in keys}
    total.update(
        logical_bytes=int(logical.sum()),
        stored_bytes=int(size[unique_blob].sum()),
        exclusive_bytes=int(exclusive.sum()),
        foreign_bytes=int(foreign_size[unique_blob].sum()),
        n_tags=int(tag_pairs.sum()),
        n_blobs=int((unique_blob & stored_ref).sum()),
    )
    return finish_usage(out, keys, total)


USAGE_COLUMNS = (
    "logical_bytes",
    "stored_bytes",
    "exclusive_bytes",
    "shared_bytes",
    "foreign_bytes",
    "n_tags",
    "n_blobs",
)


def finish_usage(out: pd.DataFrame, keys: list[str], total: dict[str, Any]) -> pd.DataFrame:
    """The per-group table plus its TOTAL row, in the column order and nullable int64 dtypes
    ``storage_usage`` promises (shared with the dask implementation, which must match it)."""
    total["shared_bytes"] = total["stored_bytes"] - total["exclusive_bytes"]
    out = pd.concat([out.reset_index(drop=True), pd.DataFrame([total])], ignore_index=True)
    out = out[[*keys, *USAGE_COLUMNS]]
    for column in USAGE_COLUMNS:
        out[column] = out[column].astype("int64").astype("Int64")
    return out


def _deleted_revisions(digests: Any, r: _Refs) -> np.ndarray:
    """Keys (``repo * width + revision``) of the manifest revisions the user deletes."""
    if isinstance(digests, pd.DataFrame):
        if not {"repository", "digest"} <= set(digests.columns):
            raise ValueError("reclaimable: a frame of digests needs 'repository' and 'digest' columns")
        pairs = list(zip(digests["repository"].astype(str), digests["digest"].astype(str), strict=True))
        bare: list[str] = []
    else:
        items = [digests] if isinstance(digests, str) else list(digests)
        bare = [d for d in items if isinstance(d, str)]
        pairs = [(str(p[0]), str(p[1])) for p in items if not isinstance(p, str)]
    rev_code = {name: i for i, name in enumerate(r.rev_names)}
    repo_code = {name: i for i, name in enumerate(r.repo_names)}
    width = len(r.rev_names) + 1
    keys = {repo_code[p] * width + rev_code[d] for p, d in pairs if p in repo_code and d in rev_code}
    # a bare digest means: deleted from every repository that has it
    wanted = [rev_code[d] for d in bare if d in rev_code]
    if wanted:
        owners = r.repo * width + r.owner
        keys.update(owners[np.isin(r.owner, wanted)].tolist())
    return np.array(sorted(keys), dtype="int64")


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
    if is_dask(frame):
        from ..dask.analysis import reclaimable as dask_reclaimable

        return dask_reclaimable(frame, digests, delete_untagged=delete_untagged)
    return _reclaim(_refs(frame), digests, delete_untagged)


def reclaimable_each(
    frame: Any, pairs: Iterable[tuple[str, str]], *, delete_untagged: bool = True
) -> list[int]:
    """Bytes garbage collection would free for each ``(repository, digest)`` deleted on its own."""
    r = _refs(frame)
    return [int(_reclaim(r, [pair], delete_untagged)["size"].sum()) for pair in pairs]


def _reclaim(r: _Refs, digests: Any, delete_untagged: bool) -> pd.DataFrame:
    width = len(r.rev_names) + 1
    owner = r.repo * width + r.owner
    parent = np.where(r.parent >= 0, r.repo * width + r.parent, -1)
    deleted = _deleted_revisions(digests, r)
    if delete_untagged and len(deleted):
        # The manifests a deleted index listed lose their last reference unless a tag or another
        # index still names them: --delete-untagged removes those too (nested indexes included).
        tagged = np.unique(r.repo * width + r.top)
        deleted = _untagged_closure(deleted, owner, parent, tagged)
    remaining = ~np.isin(owner, deleted)
    # Distribution's mark phase: every remaining revision marks its own content; a remaining index
    # marks the manifests it lists (their blobs only).
    marks = remaining | (
        (parent >= 0) & ~np.isin(parent, deleted) & np.isin(r.kind, [MANIFEST, NESTED_INDEX])
    )
    marked = np.zeros(len(r.blob_names), dtype=bool)
    marked[r.blob[marks]] = True
    # a foreign layer was never in the registry's storage: deleting frees none of it
    gone = ~remaining & ~marked[r.blob] & r.stored
    rows = pd.DataFrame(
        {
            "blob": r.blob[gone],
            "kind": r.kind[gone],
            "size": pd.array(r.size[gone], dtype="Int64"),
            "repo": r.repo[gone],
        }
    )
    rows["size"] = rows["size"].mask(~r.known[gone])
    repositories = rows.groupby("blob")["repo"].agg(lambda s: sorted({str(r.repo_names[c]) for c in s}))
    first = rows.drop_duplicates("blob").set_index("blob")
    out = pd.DataFrame(
        {
            "blob": r.blob_names[first.index.to_numpy()].astype(str),
            "kind": KINDS[first["kind"].to_numpy()].astype(str),
            "size": first["size"].to_numpy(),
            "repositories": repositories.reindex(first.index).to_numpy(),
        }
    )
    return out.sort_values(["kind", "blob"]).reset_index(drop=True)


def _untagged_closure(
    deleted: np.ndarray, owner: np.ndarray, parent: np.ndarray, tagged: np.ndarray
) -> np.ndarray:
    """``deleted`` plus every revision left without a tag or a remaining index that lists it."""
    children = pd.DataFrame({"child": owner, "parent": parent})
    children = children[children["parent"] >= 0].drop_duplicates()
    children = children[~children["child"].isin(tagged)]
    gone = set(deleted.tolist())
    while True:
        listing = children.assign(parent_gone=children["parent"].isin(gone))
        # a child goes when every index that lists it is gone
        orphaned = listing.groupby("child")["parent_gone"].all()
        new = set(orphaned.index[orphaned.to_numpy()].tolist()) - gone
        if not new:
            return np.array(sorted(gone), dtype="int64")
        gone |= new
