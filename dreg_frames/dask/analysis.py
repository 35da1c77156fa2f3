"""The analysis functions on dask DataFrames: the pandas answers, computed partition by partition.

Each partition runs the pandas code's own first step (``_refs``: who references which blob, and
``_group_codes``); what must meet across partitions is keyed by a 128-bit hash of names (a blob's
digest, a (repository, revision) pair, a group's labels) and reduced in hash buckets, each a tree
of small merges. Memory is bounded by a partition and a bucket of distinct blobs, never by the
registry's layer rows. "First" (which size a blob is counted with when rows disagree) follows
the pandas order: by reference kind, then partition, then row.

``stale`` and the retention policies work on one row per (repository, tag, manifest), which is
what they read; ``duplicates`` on one row per (repository, tag, manifest) with the layer list as a
fingerprint. Both then run the pandas code itself on that much smaller frame.

Storage and duplicates need each tag's rows in one partition (a crawl store has whole repositories
per part); other data is shuffled by (repository, tag) first.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ..analysis import duplicates as pandas_duplicates
from ..analysis import storage_usage as pandas_storage_usage
from ..analysis._frames import as_frame
from ..analysis.usage import (
    CONFIG,
    FOREIGN,
    INDEX,
    KINDS,
    LAYER,
    MANIFEST,
    NESTED_INDEX,
    TOTAL,
    _group_codes,
    _Refs,
    _refs,
    _sum_by,
    _untagged_closure,
    finish_usage,
)
from ..crawl.frames import LAYER_ONLY

if TYPE_CHECKING:
    import dask.dataframe as dd
    from dask.delayed import Delayed

__all__ = ["duplicates", "policy_frame", "reclaimable", "storage_usage"]

_HASH_KEYS = ("dreg-frames-key0", "dreg-frames-key1")  # siphash keys: 16 bytes each
# the pandas code builds references kind by kind (layers, configs, manifests, indexes): its "first"
# of a blob is the first of the earliest kind, so reductions order by this before partition and row
_STEP = np.zeros(len(KINDS), dtype="int8")
_STEP[[LAYER, FOREIGN]] = 0
_STEP[CONFIG] = 1
_STEP[[MANIFEST, NESTED_INDEX]] = 2
_STEP[INDEX] = 3
_REF_COLUMNS = [
    "repository",
    "tag",
    "digest",
    "manifest_digest",
    "manifest_media_type",
    "parent_digest",
    "kind",
    "config_digest",
    "config_size",
    "manifest_size",
    "digest_size",
    "layer_index",
    "layer_digest",
    "layer_size",
    "layer_media_type",
    "layer_foreign",
]
_SPLIT_EVERY = 8


# -- shared machinery -------------------------------------------------------------------------------
def _hash(names: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two independent 64-bit hashes of each name: a 128-bit key."""
    values = np.asarray(names, dtype=object)
    return tuple(  # type: ignore[return-value]
        pd.util.hash_array(values, hash_key=key, categorize=False) for key in _HASH_KEYS
    )


def _pair_keys(
    left: np.ndarray, right: np.ndarray, left_names: np.ndarray, right_names: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """128-bit keys of (left name, right name) code pairs (e.g. repository and revision), hashing
    each distinct pair once. Pairs with a missing right side (code -1) get key (0, 0)."""
    width = len(right_names) + 1
    combined = left.astype("int64") * width + (right + 1)
    unique, inverse = np.unique(combined, return_inverse=True)
    u_left, u_right = unique // width, unique % width - 1
    text = np.array(
        [
            f"{left_names[a]}\x1f{right_names[b]}" if b >= 0 else ""
            for a, b in zip(u_left, u_right, strict=True)
        ],
        dtype=object,
    )
    k0, k1 = _hash(text)
    k0[u_right < 0] = 0
    k1[u_right < 0] = 0
    return k0[inverse], k1[inverse]


@dataclass(frozen=True)
class _KeySet:
    """A set of 128-bit keys as two arrays sorted together: membership by binary search, built once
    and shared by every partition's task (a MultiIndex per call cost more than the work)."""

    k0: np.ndarray
    k1: np.ndarray

    @classmethod
    def of(cls, frame: pd.DataFrame) -> _KeySet:
        k0 = frame["k0"].to_numpy(dtype="uint64")
        k1 = frame["k1"].to_numpy(dtype="uint64")
        order = np.lexsort((k1, k0))
        return cls(k0[order], k1[order])

    def __len__(self) -> int:
        return len(self.k0)

    def contains(self, a0: np.ndarray, a1: np.ndarray) -> np.ndarray:
        left = np.searchsorted(self.k0, a0, "left")
        right = np.searchsorted(self.k0, a0, "right")
        out = np.zeros(len(a0), dtype=bool)
        one = right - left == 1
        out[one] = self.k1[left[one]] == a1[one]
        # the same first half twice: as likely as a 64-bit hash collision, or a key listed twice
        for i in np.flatnonzero(right - left > 1):
            out[i] = bool((self.k1[left[i] : right[i]] == a1[i]).any())
        return out


def _isin2(a0: np.ndarray, a1: np.ndarray, b: pd.DataFrame | _KeySet) -> np.ndarray:
    """Which 128-bit keys (a0, a1) are among ``b`` (rows k0, k1, or a key set)."""
    return (b if isinstance(b, _KeySet) else _KeySet.of(b)).contains(a0, a1)


def _pick(frame: Any, columns: list[str], what: str, prefer: tuple[str, ...]) -> Any:
    """The dask frame to analyse, checked with the pandas functions' own messages."""
    if hasattr(frame, "frames"):
        return as_frame(frame, columns, what, prefer)
    as_frame(frame._meta, columns, what, prefer)
    return frame


def _parts(frame: dd.DataFrame, columns: Iterable[str]) -> list[Delayed]:
    """The partitions as delayed pandas frames, reading only ``columns`` (of those present)."""
    present = [c for c in columns if c in frame.columns]
    return list(frame[present].to_delayed(optimize_graph=True))


def _tree(pieces: list[Any], combine: Callable[[list[Any]], Any]) -> Any:
    """Reduce delayed ``pieces`` in order, ``_SPLIT_EVERY`` at a time, to one delayed value."""
    from dask.delayed import delayed

    if not pieces:
        return delayed(combine)([])
    while len(pieces) > 1:
        pieces = [delayed(combine)(pieces[i : i + _SPLIT_EVERY]) for i in range(0, len(pieces), _SPLIT_EVERY)]
    return pieces[0]


def _n_buckets(n_partitions: int) -> int:
    return max(1, min(32, n_partitions))


def _bucketed(frame: pd.DataFrame, buckets: int) -> list[pd.DataFrame]:
    """``frame`` split by ``k0 % buckets`` (row order kept within each bucket)."""
    if buckets == 1:
        return [frame]
    which = (frame["k0"].to_numpy() % np.uint64(buckets)).astype("int64")
    return [frame[which == b] for b in range(buckets)]


def _tag_keys(part: pd.DataFrame) -> pd.DataFrame:
    repo = part["repository"].astype("category")
    tag = part["tag"].astype("category")
    k0, k1 = _pair_keys(
        repo.cat.codes.to_numpy().astype("int64"),
        tag.cat.codes.to_numpy().astype("int64"),
        repo.cat.categories.to_numpy(dtype=object),
        tag.cat.categories.to_numpy(dtype=object),
    )
    return pd.DataFrame({"k0": k0, "k1": k1}).drop_duplicates()


def whole_tags(frame: dd.DataFrame) -> dd.DataFrame:
    """``frame`` with every (repository, tag) in one partition: as it is when it already is (a crawl
    store), else shuffled by (repository, tag)."""
    from dask.base import compute
    from dask.delayed import delayed

    if frame.npartitions == 1:
        return frame
    keys = compute(*[delayed(_tag_keys)(p) for p in _parts(frame, ["repository", "tag"])])
    if not pd.concat(keys, ignore_index=True).duplicated().any():
        return frame
    return frame.shuffle(on=["repository", "tag"], shuffle_method=_shuffle_method())


def _shuffle_method() -> str | None:
    """dask's choice on a distributed cluster (p2p, on disk); "tasks" under any other scheduler,
    where p2p (chosen whenever a Client exists) cannot run."""
    from dask.base import get_scheduler

    owner = getattr(get_scheduler(), "__self__", None)
    return None if type(owner).__name__ == "Client" else "tasks"


# -- storage_usage ----------------------------------------------------------------------------------
def storage_usage(frame: Any, by: str | list[str] = "repository") -> pd.DataFrame:
    """:func:`dreg_frames.storage_usage` of a dask frame (or a DaskCrawl): the same table."""
    from dask.base import compute
    from dask.delayed import delayed

    source = _pick(
        frame,
        ["repository", "tag", "digest", "manifest_digest", "layer_digest", "layer_size"],
        "storage analysis",
        ("layers",),
    )
    pandas_storage_usage(source._meta, by)  # checks `by` with the pandas messages, on no rows
    keys = [by] if isinstance(by, str) else list(by)
    source = whole_tags(source)
    parts = _parts(source, _REF_COLUMNS)
    buckets = _n_buckets(len(parts))
    firsts = [delayed(_usage_part)(part, keys, buckets) for part in parts]
    blob_totals = [
        delayed(_blob_totals)(
            _tree([delayed(operator.getitem)(f, ("blobs", b)) for f in firsts], _merge_blobs)
        )
        for b in range(buckets)
    ]
    summaries, totals = compute(
        [delayed(operator.itemgetter("groups", "tags", "names"))(f) for f in firsts], blob_totals
    )
    groups = pd.concat([s[0] for s in summaries], ignore_index=True)
    n_tags_total = sum(s[1] for s in summaries)
    spanning = groups.loc[groups.duplicated(["g0", "g1"], keep=False), ["g0", "g1"]].drop_duplicates()
    merged = groups.groupby(["g0", "g1"], sort=False).agg(
        {
            **{k: "first" for k in keys},
            "logical": "sum",
            "n_tags": "sum",
            "stored": "sum",
            "foreign": "sum",
            "n_blobs": "sum",
        }
    )
    if len(spanning):
        # A group in several partitions: its distinct blobs are counted from (group, blob) pairs.
        exact = _spanning_pairs(parts, keys, spanning.rename(columns={"g0": "k0", "g1": "k1"}), buckets)
        index = pd.MultiIndex.from_frame(spanning)
        for column in ("stored", "foreign", "n_blobs"):
            merged.loc[index, column] = exact[column].reindex(index, fill_value=0).to_numpy()
    exclusive = pd.concat([t[1] for t in totals], ignore_index=True).groupby(["g0", "g1"])["exclusive"].sum()
    merged["exclusive"] = exclusive.reindex(merged.index, fill_value=0).to_numpy()
    order = _label_order(merged, keys, summaries)
    labels = pd.DataFrame({k: merged[k].to_numpy(dtype=object)[order] for k in keys})
    out = labels.copy()
    for name in ("logical", "stored", "exclusive", "foreign", "n_tags", "n_blobs"):
        out[f"{name}_bytes" if name in ("logical", "stored", "exclusive", "foreign") else name] = merged[
            name
        ].to_numpy(dtype="int64")[order]
    out["shared_bytes"] = out["stored_bytes"] - out["exclusive_bytes"]
    total: dict[str, Any] = {k: TOTAL for k in keys}
    total.update(
        logical_bytes=int(out["logical_bytes"].sum()),
        stored_bytes=int(sum(t[0]["stored"] for t in totals)),
        exclusive_bytes=int(out["exclusive_bytes"].sum()),
        foreign_bytes=int(sum(t[0]["foreign"] for t in totals)),
        n_tags=int(n_tags_total),
        n_blobs=int(sum(t[0]["n_blobs"] for t in totals)),
    )
    return finish_usage(out, keys, total)


def _group_hashes(r: _Refs, keys: list[str]) -> tuple[np.ndarray, pd.DataFrame, np.ndarray, np.ndarray]:
    """Each reference's group code, the group labels, and each group's 128-bit key."""
    group, labels = _group_codes(r, keys)
    text = labels[keys[0]].astype(str).to_numpy(dtype=object)
    for k in keys[1:]:
        text = text + "\x1f" + labels[k].astype(str).to_numpy(dtype=object)
    h0, h1 = _hash(text)
    g0 = np.zeros(len(labels), dtype="uint64")
    g1 = np.zeros(len(labels), dtype="uint64")
    g0[labels.index.to_numpy()] = h0
    g1[labels.index.to_numpy()] = h1
    return group, labels, g0, g1


def _usage_part(part: pd.DataFrame, keys: list[str], buckets: int) -> dict[Any, Any]:
    """One partition's share: per-group sums (exact for a group no other partition has) and, per
    blob, its first reference's size and kind and the smallest and largest group key using it."""
    r = _refs(part).per_tag()
    group, labels, g0, g1 = _group_hashes(r, keys)
    n_groups = len(labels)
    stored_ref = r.stored
    size = np.where(stored_ref, r.size, 0)
    foreign_size = np.where(stored_ref, 0, r.size)
    distinct = ~pd.DataFrame({"g": group, "b": r.blob}).duplicated().to_numpy()
    g_d = group[distinct]
    tag_pairs = ~pd.DataFrame({"r": r.repo, "t": r.tag}).duplicated().to_numpy()
    index = labels.index.to_numpy()
    groups = labels.reset_index(drop=True).assign(
        g0=g0[index],
        g1=g1[index],
        logical=_sum_by(group, size, n_groups)[index],
        n_tags=np.bincount(group[tag_pairs], minlength=n_groups)[index],
        stored=_sum_by(g_d, size[distinct], n_groups)[index],
        foreign=_sum_by(g_d, foreign_size[distinct], n_groups)[index],
        n_blobs=np.bincount(g_d[stored_ref[distinct]], minlength=n_groups)[index],
    )
    b0, b1 = _hash(r.blob_names)
    refs = pd.DataFrame(
        {
            "step": _STEP[r.kind],
            "size": r.size,
            "stored": stored_ref,
            "g0": g0[group],
            "g1": g1[group],
        }
    )
    per_blob = refs.groupby(r.blob, sort=False).agg(
        step=("step", "first"),
        size=("size", "first"),
        stored=("stored", "first"),
        g0min=("g0", "min"),
        g0max=("g0", "max"),
        g1min=("g1", "min"),
        g1max=("g1", "max"),
    )
    blob_codes = per_blob.index.to_numpy()
    per_blob = per_blob.reset_index(drop=True)
    per_blob.insert(0, "k1", b1[blob_codes])
    per_blob.insert(0, "k0", b0[blob_codes])
    out: dict[Any, Any] = {
        "groups": groups,
        "tags": int(tag_pairs.sum()),
        "names": _name_facts(part, r),
    }
    for b, piece in enumerate(_bucketed(per_blob, buckets)):
        out[("blobs", b)] = piece
    return out


def _name_facts(part: pd.DataFrame, r: _Refs) -> tuple[dict[str, str], bool]:
    """What the pandas code's label order depends on: each namespace's first repository name
    (namespaces are numbered in repository order), and whether any row's kind is ``index``."""
    namespaces: dict[str, str] = {}
    for name in r.repo_names:
        ns = name.split("/")[0] if "/" in name else "library"
        if ns not in namespaces or name < namespaces[ns]:
            namespaces[ns] = name
    has_index = "kind" in part and bool((part["kind"].astype(object) == "index").any())
    return namespaces, has_index


def _merge_blobs(pieces: list[pd.DataFrame]) -> pd.DataFrame:
    """Per blob, over partitions: the first reference (earliest kind, then partition) and the
    smallest and largest group keys."""
    frame = pd.concat(pieces, ignore_index=True).sort_values("step", kind="stable")
    return frame.groupby(["k0", "k1"], sort=False, as_index=False).agg(
        step=("step", "first"),
        size=("size", "first"),
        stored=("stored", "first"),
        g0min=("g0min", "min"),
        g0max=("g0max", "max"),
        g1min=("g1min", "min"),
        g1max=("g1max", "max"),
    )


def _blob_totals(blobs: pd.DataFrame) -> tuple[dict[str, int], pd.DataFrame]:
    """One bucket's registry totals, and the bytes of blobs one group alone uses, per group."""
    stored = blobs["stored"].to_numpy(dtype=bool)
    size = blobs["size"].to_numpy(dtype="int64")
    alone = (
        stored
        & (blobs["g0min"].to_numpy() == blobs["g0max"].to_numpy())
        & (blobs["g1min"].to_numpy() == blobs["g1max"].to_numpy())
    )
    exclusive = (
        pd.DataFrame(
            {
                "g0": blobs["g0min"].to_numpy()[alone],
                "g1": blobs["g1min"].to_numpy()[alone],
                "exclusive": size[alone],
            }
        )
        .groupby(["g0", "g1"], as_index=False)["exclusive"]
        .sum()
    )
    totals = {
        "stored": int(size[stored].sum()),
        "foreign": int(size[~stored].sum()),
        "n_blobs": int(stored.sum()),
    }
    return totals, exclusive


def _spanning_pairs(
    parts: list[Delayed], keys: list[str], spanning: pd.DataFrame, buckets: int
) -> pd.DataFrame:
    """stored / foreign / n_blobs of the groups found in several partitions, from their distinct
    (group, blob) pairs (each pair's first reference decides its size and whether it is stored)."""
    from dask.base import compute
    from dask.delayed import delayed

    firsts = [delayed(_pairs_part)(part, keys, spanning, buckets) for part in parts]
    sums = [
        delayed(_pair_sums)(_tree([delayed(operator.getitem)(f, b) for f in firsts], _merge_pairs))
        for b in range(buckets)
    ]
    found = pd.concat(compute(*sums), ignore_index=True)
    return found.groupby(["g0", "g1"])[["stored", "foreign", "n_blobs"]].sum()


def _pairs_part(
    part: pd.DataFrame, keys: list[str], spanning: pd.DataFrame, buckets: int
) -> list[pd.DataFrame]:
    r = _refs(part).per_tag()
    group, _, g0, g1 = _group_hashes(r, keys)
    rows = _isin2(g0[group], g1[group], spanning)
    b0, b1 = _hash(r.blob_names)
    pairs = pd.DataFrame(
        {
            "k0": b0[r.blob],
            "k1": b1[r.blob],
            "g0": g0[group],
            "g1": g1[group],
            "step": _STEP[r.kind],
            "size": r.size,
            "stored": r.stored,
        }
    )[rows]
    return _bucketed(pairs.drop_duplicates(["g0", "g1", "k0", "k1"]), buckets)


def _merge_pairs(pieces: list[pd.DataFrame]) -> pd.DataFrame:
    frame = pd.concat(pieces, ignore_index=True).sort_values("step", kind="stable")
    return frame.drop_duplicates(["g0", "g1", "k0", "k1"])


def _pair_sums(pairs: pd.DataFrame) -> pd.DataFrame:
    stored = pairs["stored"].to_numpy(dtype=bool)
    size = pairs["size"].to_numpy(dtype="int64")
    work = pd.DataFrame(
        {
            "g0": pairs["g0"].to_numpy(),
            "g1": pairs["g1"].to_numpy(),
            "stored": np.where(stored, size, 0),
            "foreign": np.where(stored, 0, size),
            "n_blobs": stored.astype("int64"),
        }
    )
    return work.groupby(["g0", "g1"], as_index=False)[["stored", "foreign", "n_blobs"]].sum()


def _label_order(merged: pd.DataFrame, keys: list[str], summaries: Sequence[Any]) -> np.ndarray:
    """The pandas row order: by category code, i.e. by name, except that namespaces are numbered by
    their first repository and ``index`` is the last kind when no row has it."""
    namespaces: dict[str, str] = {}
    has_index = False
    for _, _, (first_repo, index_kind) in summaries:
        for ns, name in first_repo.items():
            if ns not in namespaces or name < namespaces[ns]:
                namespaces[ns] = name
        has_index = has_index or index_kind
    sort: dict[str, Any] = {}
    for i, k in enumerate(keys):
        values = merged[k].astype(str)
        if k == "namespace":
            values = values.map(namespaces)
        if k == "kind":
            sort[f"{i}_late"] = ((values == "index") & (not has_index)).to_numpy()
        sort[f"{i}"] = values.to_numpy(dtype=object)
    frame = pd.DataFrame(sort)
    return frame.sort_values(list(frame.columns), kind="stable").index.to_numpy()


# -- duplicates -------------------------------------------------------------------------------------
def duplicates(frame: Any) -> pd.DataFrame:
    """:func:`dreg_frames.duplicates` of a dask frame (or a DaskCrawl): the same table.

    Each partition gives one row per (repository, tag, manifest), whose layer list becomes one
    fingerprint "layer" and their summed sizes its size; the pandas function runs on those rows.
    """
    source = _pick(
        frame, ["repository", "tag", "digest", "manifest_digest"], "duplicates", ("layers", "images")
    )
    if "layer_digest" in source.columns:
        source = whole_tags(source)
    columns = [
        "repository",
        "tag",
        "digest",
        "manifest_digest",
        "config_digest",
        "size",
        "layer_index",
        "layer_digest",
        "layer_size",
    ]
    rows = _gather_rows(_parts(source, columns), _manifest_rows, ["repository", "tag", "manifest_digest"])
    return pandas_duplicates(rows)


def _manifest_rows(part: pd.DataFrame) -> pd.DataFrame:
    key = ["repository", "tag", "manifest_digest"]
    first = ~part.duplicated(key).to_numpy()
    if "layer_digest" not in part:
        return part[first].reset_index(drop=True)
    manifest = part["manifest_digest"].astype("category")
    m_codes = manifest.cat.codes.to_numpy().astype("int64")
    layer = part["layer_digest"].astype("category")
    l_codes = layer.cat.codes.to_numpy().astype("int64")
    position = (
        part["layer_index"].fillna(0).to_numpy(dtype="uint64")
        if "layer_index" in part
        else np.zeros(len(part), "uint64")
    )
    keep = ~pd.DataFrame({"m": m_codes, "p": position}).duplicated().to_numpy() & (l_codes >= 0)
    l0, l1 = _hash(layer.cat.categories.to_numpy(dtype=object))
    fingerprint = {}
    for i, hashed in enumerate((l0, l1)):
        mixed = pd.util.hash_array(hashed[l_codes[keep]] * np.uint64(1_000_003) + position[keep])
        fingerprint[i] = pd.Series(mixed).groupby(m_codes[keep]).sum()
    size = (
        pd.Series(part["layer_size"].to_numpy(dtype="float64", na_value=np.nan)[keep])
        .groupby(m_codes[keep])
        .sum(min_count=1)
    )
    rows = part.loc[
        first, [c for c in part.columns if c not in ("layer_index", "layer_digest", "layer_size")]
    ]
    codes = m_codes[first]
    has_layers = np.isin(codes, fingerprint[0].index.to_numpy())
    text = [
        f"fingerprint:{a:016x}{b:016x}" if ok else None
        for a, b, ok in zip(
            fingerprint[0].reindex(codes, fill_value=0).to_numpy(),
            fingerprint[1].reindex(codes, fill_value=0).to_numpy(),
            has_layers,
            strict=True,
        )
    ]
    return rows.assign(
        layer_index=0,
        layer_digest=pd.array(text, dtype="string"),
        layer_size=size.reindex(codes).to_numpy(),
    ).reset_index(drop=True)


def _gather_rows(
    parts: list[Delayed], reduce: Callable[[pd.DataFrame], pd.DataFrame], key: list[str]
) -> pd.DataFrame:
    """Each partition reduced, then the first row of each ``key`` in partition order."""
    from dask.base import compute
    from dask.delayed import delayed

    reduced = compute(*[delayed(_compact)(delayed(reduce)(p)) for p in parts])
    rows = pd.concat(reduced, ignore_index=True) if reduced else pd.DataFrame(columns=key)
    return rows[~rows.duplicated(key).to_numpy()].reset_index(drop=True)


def _compact(frame: pd.DataFrame) -> pd.DataFrame:
    """Text as arrow strings: partitions' categories differ, and concatenated they would become
    Python objects (several times the bytes)."""
    text = [c for c in frame.columns if isinstance(frame[c].dtype, (pd.CategoricalDtype, pd.StringDtype))]
    return frame.astype(dict.fromkeys(text, "string[pyarrow]")) if text else frame


# -- stale and the retention policies ---------------------------------------------------------------
def policy_frame(frame: Any) -> pd.DataFrame:
    """One row per (repository, tag, manifest) of a dask frame, with every column but the layer
    ones: all a retention policy reads (stale, GitLab, Harbor, ECR), in the original row order."""
    source = _pick(
        frame, ["repository", "tag", "digest", "created"], "retention policy", ("images", "tags", "layers")
    )
    columns = [c for c in source.columns if c not in LAYER_ONLY]
    key = ["repository", "tag", "manifest_digest" if "manifest_digest" in columns else "digest"]

    def first_rows(part: pd.DataFrame) -> pd.DataFrame:
        return part[~part.duplicated(key).to_numpy()]

    return _gather_rows(_parts(source, columns), first_rows, key)


# -- reclaimable ------------------------------------------------------------------------------------
def reclaimable(
    frame: Any,
    digests: Iterable[str] | Iterable[tuple[str, str]] | pd.DataFrame | str,
    *,
    delete_untagged: bool = True,
) -> pd.DataFrame:
    """:func:`dreg_frames.reclaimable` of a dask frame (or a DaskCrawl): the same blobs.

    Two passes over the partitions: the references of deleted revisions (and whether any of them
    lists others), then which of their blobs a remaining revision still marks. When a deleted index
    lists manifests, two more: the index graph, for the untagged closure, and the references of
    the manifests it adds. Memory holds the index graph and what the deletes touch.
    """
    from dask.base import compute
    from dask.delayed import delayed

    source = _pick(
        frame,
        ["repository", "tag", "digest", "manifest_digest", "layer_digest", "layer_size"],
        "storage analysis",
        ("layers",),
    )
    pairs, bare = _victims(digests)
    parts = _parts(source, _REF_COLUMNS)
    deleted = _pair_frame(pairs)
    if not len(deleted) and not bare:
        return _freed(pd.DataFrame({"blob": [], "kind": [], "size": [], "known": [], "repositories": []}))
    named = frozenset(bare)
    gone = delayed(_KeySet.of(deleted))  # one copy in the graph, shared by every task
    found = compute(*[delayed(_candidates_part)(p, i, gone, named) for i, p in enumerate(parts)])
    refs = [f[0] for f in found]
    deleted = pd.concat([deleted, *[f[1] for f in found]], ignore_index=True).drop_duplicates()
    if delete_untagged and any(f[2] for f in found):
        # a deleted index lists manifests: those left without a tag or another index go too
        graphs = compute(*[delayed(_graph_part)(p) for p in parts])
        edges = pd.concat([g[0] for g in graphs], ignore_index=True).drop_duplicates()
        tagged = pd.concat([g[1] for g in graphs], ignore_index=True).drop_duplicates()
        closed = _closure(deleted, edges, tagged)
        more = closed[~_isin2(closed["k0"].to_numpy(), closed["k1"].to_numpy(), deleted)]
        if len(more):
            extra = delayed(_KeySet.of(more))
            again = [delayed(_candidates_part)(p, i, extra, frozenset()) for i, p in enumerate(parts)]
            refs += [f[0] for f in compute(*again)]
        deleted = closed
    candidates = _merge_candidates(refs)
    gone, wanted = delayed(_KeySet.of(deleted)), delayed(_KeySet.of(candidates))
    marked = pd.concat(
        [
            pd.DataFrame({"k0": [], "k1": []}, dtype="uint64"),
            *compute(*[delayed(_marks_part)(p, gone, wanted) for p in parts]),
        ],
        ignore_index=True,
    )
    return _freed(candidates[~_isin2(candidates["k0"].to_numpy(), candidates["k1"].to_numpy(), marked)])


def _victims(digests: Any) -> tuple[list[tuple[str, str]], list[str]]:
    """(repository, digest) pairs and bare digests, read as the pandas function reads them."""
    if isinstance(digests, pd.DataFrame):
        if not {"repository", "digest"} <= set(digests.columns):
            raise ValueError("reclaimable: a frame of digests needs 'repository' and 'digest' columns")
        return list(zip(digests["repository"].astype(str), digests["digest"].astype(str), strict=True)), []
    items = [digests] if isinstance(digests, str) else list(digests)
    bare = [d for d in items if isinstance(d, str)]
    return [(str(p[0]), str(p[1])) for p in items if not isinstance(p, str)], bare


def _pair_frame(pairs: list[tuple[str, str]]) -> pd.DataFrame:
    k0, k1 = _hash(np.array([f"{repo}\x1f{digest}" for repo, digest in pairs], dtype=object))
    return pd.DataFrame({"k0": k0, "k1": k1}).drop_duplicates()


def _revision_keys(r: _Refs) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    return {
        "owner": _pair_keys(r.repo, r.owner, r.repo_names, r.rev_names),
        "parent": _pair_keys(r.repo, r.parent, r.repo_names, r.rev_names),
        "top": _pair_keys(r.repo, r.top, r.repo_names, r.rev_names),
    }


def _graph_part(part: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Index edges (child, parent revision) and tagged revisions."""
    r = _refs(part)
    keys = _revision_keys(r)
    listed = r.parent >= 0
    edges = pd.DataFrame(
        {
            "c0": keys["owner"][0][listed],
            "c1": keys["owner"][1][listed],
            "p0": keys["parent"][0][listed],
            "p1": keys["parent"][1][listed],
        }
    ).drop_duplicates()
    tagged = pd.DataFrame({"k0": keys["top"][0], "k1": keys["top"][1]}).drop_duplicates()
    return edges, tagged


def _closure(deleted: pd.DataFrame, edges: pd.DataFrame, tagged: pd.DataFrame) -> pd.DataFrame:
    """The pandas closure (children left without a tag or a remaining index) on integer ids."""
    every = pd.concat(
        [
            deleted,
            edges[["c0", "c1"]].set_axis(["k0", "k1"], axis=1),
            edges[["p0", "p1"]].set_axis(["k0", "k1"], axis=1),
            tagged,
        ],
        ignore_index=True,
    ).drop_duplicates()
    index = pd.MultiIndex.from_frame(every)

    def ids(a0: Any, a1: Any) -> np.ndarray:
        return np.asarray(index.get_indexer(pd.MultiIndex.from_arrays([a0, a1])), dtype="int64")

    gone = _untagged_closure(
        np.unique(ids(deleted["k0"], deleted["k1"])),
        ids(edges["c0"], edges["c1"]),
        ids(edges["p0"], edges["p1"]),
        np.unique(ids(tagged["k0"], tagged["k1"])),
    )
    return every.iloc[gone].reset_index(drop=True)


def _candidates_part(
    part: pd.DataFrame, number: int, deleted: _KeySet, bare: frozenset[str]
) -> tuple[pd.DataFrame, pd.DataFrame, bool]:
    """Per stored blob a deleted revision references: its first such reference (kind, size) in
    the pandas order, and the repositories whose deleted revisions reference it. Also the
    revisions a bare digest names here, and whether a deleted revision lists others."""
    r = _refs(part)
    keys = _revision_keys(r)
    owner = keys["owner"]
    by_name = np.isin(r.rev_names[r.owner], list(bare)) if bare else np.zeros(len(r.owner), bool)
    gone = _isin2(owner[0], owner[1], deleted) | by_name
    hits = pd.DataFrame({"k0": owner[0][by_name], "k1": owner[1][by_name]}).drop_duplicates()
    listed = r.parent >= 0
    parent_gone = _isin2(keys["parent"][0], keys["parent"][1], deleted) | (
        np.isin(r.rev_names[r.parent], list(bare)) if bare else False
    )
    rows = gone & r.stored
    refs = pd.DataFrame(
        {
            "b": r.blob[rows],
            "repo": r.repo[rows],
            "kind": r.kind[rows],
            "size": r.size[rows],
            "known": r.known[rows],
            "pos": np.flatnonzero(rows),
        }
    )
    first = refs.drop_duplicates("b")
    pairs = refs.drop_duplicates(["b", "repo"]).sort_values("b", kind="stable")
    blobs = pairs["b"].to_numpy()
    cuts = np.flatnonzero(np.diff(blobs)) + 1
    names = r.repo_names[pairs["repo"].to_numpy()]
    repos = pd.Series(
        [tuple(chunk) for chunk in np.split(names, cuts)] if len(names) else [],
        index=np.unique(blobs),
        dtype=object,
    )
    b0, b1 = _hash(r.blob_names)
    codes = first["b"].to_numpy()
    found = pd.DataFrame(
        {
            "k0": b0[codes],
            "k1": b1[codes],
            "blob": r.blob_names[codes],
            "step": _STEP[first["kind"].to_numpy()],
            "part": number,
            "pos": first["pos"].to_numpy(),
            "kind": first["kind"].to_numpy(),
            "size": first["size"].to_numpy(),
            "known": first["known"].to_numpy(),
            "repositories": repos.reindex(codes).to_numpy(),
        }
    )
    return found, hits, bool((listed & parent_gone).any())


def _merge_candidates(parts: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """Per blob over partitions: the first reference (earliest kind, then partition) and the
    sorted union of repositories."""
    frame = pd.concat(parts, ignore_index=True).sort_values(["step", "part", "pos"], kind="stable")
    again = frame.duplicated(["k0", "k1"], keep=False).to_numpy()
    merged = frame[again].groupby(["k0", "k1"], sort=False)["repositories"].agg(lambda t: set().union(*t))
    out = frame[~frame.duplicated(["k0", "k1"]).to_numpy()].reset_index(drop=True)
    key = pd.MultiIndex.from_frame(out[["k0", "k1"]])
    union = merged.reindex(key).to_numpy()
    out["repositories"] = [
        sorted(u) if isinstance(u, set) else sorted(own)
        for u, own in zip(union, out["repositories"].to_numpy(), strict=True)
    ]
    return out


def _marks_part(part: pd.DataFrame, deleted: _KeySet, wanted: _KeySet) -> pd.DataFrame:
    """Which of the ``wanted`` blobs a remaining revision of this partition still marks."""
    r = _refs(part)
    keys = _revision_keys(r)
    remaining = ~_isin2(*keys["owner"], deleted)
    listed = (r.parent >= 0) & ~_isin2(*keys["parent"], deleted) & np.isin(r.kind, [MANIFEST, NESTED_INDEX])
    b0, b1 = _hash(r.blob_names)
    marks = remaining | listed
    k0, k1 = b0[r.blob[marks]], b1[r.blob[marks]]
    hit = _isin2(k0, k1, wanted)
    return pd.DataFrame({"k0": k0[hit], "k1": k1[hit]}).drop_duplicates()


def _freed(blobs: pd.DataFrame) -> pd.DataFrame:
    """The pandas result from one row per freed blob: blob, kind, size, known, repositories."""
    size = pd.Series(pd.array(blobs["size"].to_numpy(dtype="int64"), dtype="Int64"))
    size = size.mask(~blobs["known"].to_numpy(dtype=bool))
    out = pd.DataFrame(
        {
            "blob": blobs["blob"].to_numpy(dtype=object).astype(str),
            "kind": KINDS[blobs["kind"].to_numpy(dtype="int64")].astype(str),
            "size": size.to_numpy(),
            # the pandas function's lists come from a group-by that, with no group, is int64
            "repositories": blobs["repositories"].to_numpy() if len(blobs) else np.array([], dtype="int64"),
        }
    )
    return out.sort_values(["kind", "blob"]).reset_index(drop=True)
