"""The tidy frames a crawl produces, their column contract, and how records become them.

Column contract (``layers``; ``images`` drops the layer columns and adds ``size``/``n_layers``):

=====================  =================================================================
registry               registry host[:port]
repository             repository name
tag                    tag
digest                 what the tag points to (the index / list digest for multi-arch)
media_type             media type of ``digest``
manifest_digest        the platform manifest (equals ``digest`` for single-arch)
manifest_media_type    media type of ``manifest_digest``
platform               ``os/architecture[/variant]``, e.g. ``linux/arm64/v8``
config_digest          the image config blob
config_size            bytes of the config blob; manifest_size: of the platform manifest;
                       digest_size: of what ``digest`` names (index or manifest)
created                config ``created``: tz-aware UTC, nanosecond precision; NaT when unknown
created_suspect        True when ``created`` is missing, before 2013 (the Unix epoch of
                       reproducible builds) or in the future
created_raw            (images only) the config's ``created`` text, kept for dates past 2262
layer_index            0 = base layer
layer_digest           the layer blob
layer_size             bytes, as the manifest declares (NA for schema1)
layer_media_type       the layer's media type
=====================  =================================================================
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta, timezone

import pandas as pd

from .records import ErrorRecord, RepositoryRecord, TagRecord

__all__ = [
    "ERROR_COLUMNS",
    "IMAGE_COLUMNS",
    "LAYER_COLUMNS",
    "REPOSITORY_COLUMNS",
    "SCHEMAS",
    "TAG_COLUMNS",
    "apply_schema",
    "build_frames",
    "mark_suspect",
]

KEY_COLUMNS = [
    "registry",
    "repository",
    "tag",
    "digest",
    "media_type",
    "manifest_digest",
    "manifest_media_type",
    "platform",
    "config_digest",
    "created",
    "created_suspect",
    "config_size",
    "manifest_size",
    "digest_size",
]
LAYER_ONLY = ["layer_index", "layer_digest", "layer_size", "layer_media_type"]
LAYER_COLUMNS = KEY_COLUMNS + LAYER_ONLY
IMAGE_COLUMNS = [*KEY_COLUMNS, "size", "n_layers"]
TAG_COLUMNS = [
    "registry",
    "repository",
    "tag",
    "digest",
    "media_type",
    "platforms",
    "created",
    "created_suspect",
    "size",
    "n_images",
    "digest_size",
]
ERROR_COLUMNS = ["registry", "repository", "tag", "stage", "error", "message", "status", "digest"]
REPOSITORY_COLUMNS = ["registry", "repository", "n_tags", "state"]

_CAT = "category"
_TS = "datetime64[ns, UTC]"
_TYPES: dict[str, str] = {
    "registry": _CAT,
    "repository": _CAT,
    "tag": _CAT,
    "digest": _CAT,
    "media_type": _CAT,
    "manifest_digest": _CAT,
    "manifest_media_type": _CAT,
    "platform": _CAT,
    "platforms": _CAT,
    "config_digest": _CAT,
    "created": _TS,
    "created_suspect": "bool",
    "created_raw": _CAT,
    "layer_index": "int16",
    "layer_digest": _CAT,
    "layer_size": "Int64",
    "layer_media_type": _CAT,
    "size": "Int64",
    "config_size": "Int32",
    "manifest_size": "Int32",
    "digest_size": "Int32",
    "n_layers": "int32",
    "n_images": "int32",
    "n_tags": "int32",
    "stage": _CAT,
    "state": _CAT,
    "error": _CAT,
    "message": "string",
    "status": "Int64",
}
SCHEMAS: dict[str, list[str]] = {
    "layers": LAYER_COLUMNS,
    "images": IMAGE_COLUMNS,
    "tags": TAG_COLUMNS,
    "errors": ERROR_COLUMNS,
    "repositories": REPOSITORY_COLUMNS,
}
_SORT: dict[str, list[str]] = {
    "layers": ["repository", "tag", "platform", "manifest_digest", "layer_index"],
    "images": ["repository", "tag", "platform", "manifest_digest"],
    "tags": ["repository", "tag"],
    "errors": ["repository", "tag", "stage", "digest", "message"],
    "repositories": ["repository"],
}

# Container images did not exist before 2013: an earlier date is a build-time stamp, not an age.
SUSPECT_BEFORE = pd.Timestamp("2013-01-01", tz="UTC")


def _typed(frame: pd.DataFrame) -> pd.DataFrame:
    """Contract dtypes, in place of whatever the columns hold (objects, CSV strings)."""
    out = frame.copy()
    for column in out.columns:
        dtype = _TYPES.get(column)
        if dtype == _TS:
            out[column] = _parse_created(out[column])
        elif dtype == _CAT:
            if not isinstance(out[column].dtype, pd.CategoricalDtype):
                # Inferred categories are sorted, so sorting on codes is sorting on values.
                out[column] = out[column].astype(object).where(out[column].notna(), None).astype(_CAT)
        elif dtype is not None:
            out[column] = out[column].astype(dtype)
    return out


def apply_schema(frame: pd.DataFrame, kind: str) -> pd.DataFrame:
    """Give ``frame`` the contract's column order and dtypes, sorted deterministically."""
    columns = SCHEMAS[kind]
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{kind} frame lacks columns {missing}")
    out = _typed(frame[columns + [c for c in frame.columns if c not in columns]])
    out = out.sort_values(_SORT[kind], kind="stable", na_position="first")
    return out.reset_index(drop=True)


def _parse_created(values: pd.Series) -> pd.Series:
    return pd.to_datetime(values, utc=True, format="ISO8601", errors="coerce").astype("datetime64[ns, UTC]")


def mark_suspect(created: pd.Series, now: datetime | None = None) -> pd.Series:
    """True where ``created`` is missing, before 2013 (incl. the 1970 epoch) or more than a day ahead."""
    now_ts = pd.Timestamp(now or datetime.now(timezone.utc))
    future = now_ts + timedelta(days=1)
    return created.isna() | (created < SUSPECT_BEFORE) | (created > future)


def build_frames(
    registry: str,
    tags: Sequence[TagRecord],
    errors: Iterable[ErrorRecord],
    repositories: Iterable[RepositoryRecord],
    now: datetime | None = None,
) -> dict[str, pd.DataFrame]:
    """Records -> the five frames of the contract."""
    image_rows: list[tuple[object, ...]] = []
    # Columnar lists rather than row dicts: a crawl may hold millions of layer rows.
    layer_cols: dict[str, list[object]] = {c: [] for c in ["_image", *LAYER_ONLY]}
    for record in tags:
        for image in record.images:
            image_id = len(image_rows)
            size = sum(s for _, s, _ in image.layers if s is not None) if image.layers else 0
            unknown = any(s is None for _, s, _ in image.layers)
            image_rows.append(
                (
                    registry,
                    record.repository,
                    record.tag,
                    record.digest,
                    record.media_type,
                    image.manifest_digest,
                    image.manifest_media_type,
                    image.platform,
                    image.config_digest,
                    image.created,
                    image.config_size,
                    image.manifest_size,
                    record.digest_size,
                    None if unknown else size,
                    len(image.layers),
                )
            )
            for index, (digest, layer_size, media_type) in enumerate(image.layers):
                layer_cols["_image"].append(image_id)
                layer_cols["layer_index"].append(index)
                layer_cols["layer_digest"].append(digest)
                layer_cols["layer_size"].append(layer_size)
                layer_cols["layer_media_type"].append(media_type)
    image_frame = pd.DataFrame(image_rows, columns=[c for c in IMAGE_COLUMNS if c != "created_suspect"])
    # The config's own text, for dates nanosecond timestamps cannot hold (year 2262 and later).
    image_frame["created_raw"] = image_frame["created"]
    image_frame["created"] = _parse_created(image_frame["created"])
    image_frame["created_suspect"] = mark_suspect(image_frame["created"], now)
    # Typed (categorical) before the layer rows repeat them: repeating codes is cheap, strings are not.
    image_frame = _typed(image_frame)

    layer_frame = _typed(pd.DataFrame(layer_cols))
    positions = layer_frame.pop("_image").to_numpy(dtype="int64")
    key = image_frame[KEY_COLUMNS].iloc[positions].reset_index(drop=True)
    layer_frame = pd.concat([key, layer_frame], axis=1)

    tag_frame = _tags_from_images(image_frame, layer_frame, tags, registry)
    error_frame = pd.DataFrame(
        [(registry, e.repository, e.tag, e.stage, e.error, e.message, e.status, e.digest) for e in errors],
        columns=ERROR_COLUMNS,
    )
    repo_frame = pd.DataFrame(
        [(registry, r.repository, r.n_tags, r.state) for r in repositories], columns=REPOSITORY_COLUMNS
    )
    return {
        "tags": apply_schema(tag_frame, "tags"),
        "images": apply_schema(image_frame, "images"),
        "layers": apply_schema(layer_frame, "layers"),
        "errors": apply_schema(error_frame, "errors"),
        "repositories": apply_schema(repo_frame, "repositories"),
    }


def _tags_from_images(
    images: pd.DataFrame, layers: pd.DataFrame, tags: Sequence[TagRecord], registry: str
) -> pd.DataFrame:
    base = pd.DataFrame(
        [(registry, t.repository, t.tag, t.digest, t.media_type, t.digest_size) for t in tags],
        columns=["registry", "repository", "tag", "digest", "media_type", "digest_size"],
    )
    if images.empty:
        for column, value in (("platforms", ""), ("created", pd.NaT), ("created_suspect", True), ("size", 0)):
            base[column] = value
        base["n_images"] = 0
        return base
    grouped = images.groupby(["repository", "tag"], sort=False, observed=True)
    summary = grouped.agg(
        platforms=("platform", lambda p: ",".join(sorted(set(map(str, p))))),
        created=("created", "max"),
        n_images=("manifest_digest", "size"),
    )
    summary["created_suspect"] = grouped["created_suspect"].all()
    # Bytes of distinct layers across the tag's platforms: what pulling every platform fetches.
    unique = layers.drop_duplicates(["repository", "tag", "layer_digest"])
    unique_size = unique.groupby(["repository", "tag"], sort=False, observed=True)["layer_size"].sum(
        min_count=1
    )
    summary["size"] = unique_size.reindex(summary.index)
    summary.loc[summary["size"].isna(), "size"] = 0
    # A tag whose only image has unknown layer sizes (schema1) has an unknown size.
    unknown = images[images["size"].isna()].groupby(["repository", "tag"], observed=True).size()
    summary.loc[summary.index.isin(unknown.index), "size"] = pd.NA
    out = base.merge(summary.reset_index(), on=["repository", "tag"], how="left")
    out["n_images"] = out["n_images"].fillna(0)
    out["platforms"] = out["platforms"].fillna("")
    out["created_suspect"] = out["created_suspect"].fillna(True).astype(bool)
    return out
