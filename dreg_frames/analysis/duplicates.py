"""Duplicates: one digest under many names, and the same content under different digests."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ..dask import is_dask
from ._frames import as_frame, codes

__all__ = ["duplicates"]

COLUMNS = ["kind", "key", "digests", "references", "n_references", "n_repositories", "size"]


def duplicates(frame: Any) -> pd.DataFrame:
    """Digests referenced by more than one (repository, tag), and images whose content is the same
    (same config and layers) under different manifest digests.

    One row per duplicate group: ``kind`` (``"digest"``: one digest under several references;
    ``"content"``: the same config and layers in different manifests, e.g. a Docker and an OCI copy
    of one image), ``key`` (the digest, or the config digest), ``digests``, ``references``
    (``repository:tag``), ``n_references``, ``n_repositories``, ``size`` (bytes of one copy's layers).

    Example::

        result.layers.pipe(duplicates).query("n_repositories > 1")
    """
    if is_dask(frame):  # a dask frame or DaskCrawl: the same answer, partition by partition
        from ..dask.analysis import duplicates as dask_duplicates

        return dask_duplicates(frame)
    src = as_frame(
        frame, ["repository", "tag", "digest", "manifest_digest"], "duplicates", ("layers", "images")
    )
    # Work on category codes: a crawl may have millions of rows, the answer only a few groups.
    repo, repo_names = codes(src["repository"])
    tag, tag_names = codes(src["tag"])
    digest, digest_names = codes(src["digest"])
    manifest, manifest_names = codes(src["manifest_digest"])
    work = pd.DataFrame({"repo": repo, "tag": tag, "digest": digest, "manifest": manifest})
    if "layer_digest" in src:
        layer, _ = codes(src["layer_digest"])
        # An order-sensitive fingerprint of each manifest's layer list, summed in uint64 arithmetic.
        position = (
            src["layer_index"].fillna(0).to_numpy(dtype="uint64")
            if "layer_index" in src
            else np.zeros(len(src), "uint64")
        )
        one = pd.DataFrame({"manifest": manifest, "position": position, "layer": layer})
        # the row of a manifest without layers has no layer to fingerprint (its size is 0)
        keep = ~one.duplicated(["manifest", "position"]).to_numpy() & (layer >= 0)
        mixed = pd.util.hash_array(layer[keep].astype("uint64") * np.uint64(1_000_003) + position[keep])
        fingerprint = pd.Series(mixed).groupby(manifest[keep]).sum()
        layer_size = src["layer_size"].to_numpy(dtype="float64", na_value=np.nan)[keep]
        size = pd.Series(layer_size).groupby(manifest[keep]).sum(min_count=1)
        size = size.reindex(np.unique(manifest), fill_value=0.0)
    else:
        fingerprint = None
        size = (
            pd.Series(src["size"].to_numpy(dtype="float64", na_value=np.nan) if "size" in src else np.nan)
            .groupby(manifest)
            .first()
        )
    if "config_digest" in src:
        work["config"], config_names = codes(src["config_digest"])
    images = work.drop_duplicates(["repo", "tag", "manifest"])
    images = images.assign(size=images["manifest"].map(size))
    parts = []

    refs = images.drop_duplicates(["repo", "tag", "digest"])
    counts = refs.groupby("digest").size()
    dup = refs[refs["digest"].isin(counts.index[counts.to_numpy() > 1])]
    if len(dup):
        digest_size = (
            images.drop_duplicates(["digest", "manifest"]).groupby("digest")["size"].sum(min_count=1)
        )
        groups = _groups(dup, "digest", repo_names, tag_names)
        groups["kind"] = "digest"
        groups["key"] = digest_names[groups.index.to_numpy()].astype(str)
        groups["digests"] = [[k] for k in groups["key"]]
        groups["size"] = digest_size.reindex(groups.index).to_numpy()
        parts.append(groups)

    if "config" in images:
        content = images[images["config"] >= 0]
        if fingerprint is not None:
            # Same config and no layers says nothing about sameness (OCI artifacts share the empty
            # config): content duplicates need a layer list to compare.
            content = content[content["manifest"].isin(fingerprint.index)]
        content = content.assign(fp=content["manifest"].map(fingerprint) if fingerprint is not None else 0)
        content = content.assign(
            key=content["config"].astype("int64").astype(str) + "|" + content["fp"].astype(str)
        )
        per_key = content.drop_duplicates(["key", "manifest"]).groupby("key").size()
        same = content[content["key"].isin(per_key.index[per_key.to_numpy() > 1])]
        if len(same):
            groups = _groups(same, "key", repo_names, tag_names)
            first = same.drop_duplicates("key").set_index("key")
            groups["kind"] = "content"
            groups["key"] = config_names[first.loc[groups.index, "config"].to_numpy()].astype(str)
            groups["digests"] = same.groupby("key")["manifest"].agg(
                lambda m: sorted(str(manifest_names[c]) for c in set(m))
            )
            groups["size"] = first.loc[groups.index, "size"].to_numpy()
            parts.append(groups)
    out = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=COLUMNS)
    out = out[COLUMNS]
    out["size"] = pd.to_numeric(out["size"]).astype("Int64")
    return out.sort_values(["kind", "n_references", "key"], ascending=[False, False, True]).reset_index(
        drop=True
    )


def _groups(rows: pd.DataFrame, by: str, repo_names: np.ndarray, tag_names: np.ndarray) -> pd.DataFrame:
    """references / n_references / n_repositories per ``by`` group, built once for all groups."""
    pairs = rows.drop_duplicates([by, "repo", "tag"])
    names = pd.Series(repo_names[pairs["repo"].to_numpy()], index=pairs.index)
    names = names + ":" + pd.Series(tag_names[pairs["tag"].to_numpy()], index=pairs.index)
    grouped = names.groupby(pairs[by].to_numpy())
    out = pd.DataFrame({"references": grouped.agg(sorted)})
    out["n_references"] = out["references"].map(len)
    out["n_repositories"] = pairs.groupby(by)["repo"].nunique()
    return out
