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

import json
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta, timezone

import pandas as pd

from ..client.artifacts import created_annotation, kind_of_type, tag_schema_subject
from ..client.mediatypes import FOREIGN_LAYER_TYPES, INDEX_TYPES
from .records import ErrorRecord, ReferrerRecord, RepositoryRecord, TagRecord

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
    "parent_digest",
    "platform",
    "os_version",
    "kind",
    "subject_digest",
    "config_digest",
    "created",
    "created_suspect",
    "config_size",
    "manifest_size",
    "digest_size",
]
LAYER_ONLY = ["layer_index", "layer_digest", "layer_size", "layer_media_type", "layer_foreign", "layer_urls"]
LAYER_COLUMNS = KEY_COLUMNS + LAYER_ONLY
IMAGE_ONLY = [
    "size",
    "n_layers",
    "artifact_type",
    "config_media_type",
    "created_source",
    "referrer_source",
    "annotations",
]
IMAGE_COLUMNS = [*KEY_COLUMNS, *IMAGE_ONLY]
TAG_COLUMNS = [
    "registry",
    "repository",
    "tag",
    "digest",
    "media_type",
    "platforms",
    "kind",
    "created",
    "created_suspect",
    "size",
    "n_images",
    "digest_size",
    "subject_digest",
]
REFERRER_COLUMNS = [
    "registry",
    "repository",
    "subject_digest",
    "referrer_digest",
    "kind",
    "artifact_type",
    "referrer_source",
    "tag",
    "size",
    "created",
    "subject_found",
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
    "parent_digest": _CAT,
    "platform": _CAT,
    "os_version": _CAT,
    "kind": _CAT,
    "artifact_type": _CAT,
    "config_media_type": _CAT,
    "created_source": _CAT,
    "subject_digest": _CAT,
    "referrer_source": _CAT,
    "referrer_digest": _CAT,
    "subject_found": "bool",
    "annotations": _CAT,
    "platforms": _CAT,
    "config_digest": _CAT,
    "created": _TS,
    "created_suspect": "bool",
    "created_raw": _CAT,
    "layer_index": "Int16",
    "layer_digest": _CAT,
    "layer_size": "Int64",
    "layer_media_type": _CAT,
    "layer_foreign": "bool",
    "layer_urls": _CAT,
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
    "referrers": REFERRER_COLUMNS,
}
_SORT: dict[str, list[str]] = {
    "layers": ["repository", "tag", "platform", "manifest_digest", "layer_index"],
    "images": ["repository", "tag", "platform", "manifest_digest"],
    "tags": ["repository", "tag"],
    "errors": ["repository", "tag", "stage", "digest", "message"],
    "repositories": ["repository"],
    "referrers": ["repository", "subject_digest", "referrer_digest"],
}

_NS_MIN = pd.Timestamp.min.tz_localize("UTC")
_NS_MAX = pd.Timestamp.max.tz_localize("UTC")
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
                # Inferred categories are sorted, so sorting on codes is sorting on values. Built
                # from plain objects (missing as None): casting pandas 3's strings costs more.
                values = out[column].to_numpy(dtype=object, na_value=None)
                out[column] = pd.Categorical(values)
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


def empty_frame(kind: str) -> pd.DataFrame:
    """A frame of the contract's columns and dtypes with no rows."""
    return apply_schema(pd.DataFrame(columns=SCHEMAS[kind]), kind)


def _parse_created(values: pd.Series) -> pd.Series:
    """RFC 3339 text -> nanosecond UTC timestamps; NaT for anything unreadable or out of range.

    cosign writes year 1 and some builds year 9999: nanosecond timestamps end in 2262, so such
    dates are NaT here (their text stays in ``created_raw``), never an error. pandas 3 picks the
    unit from the values, so out-of-range dates are masked before the cast, not caught after it.
    """
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        return values.astype("datetime64[ns, UTC]")
    # RFC 3339 allows a lowercase 't' and 'z'; pandas' ISO 8601 parser does not.
    text = values.astype("string").str.strip().str.upper()
    parsed = pd.to_datetime(text, utc=True, format="ISO8601", errors="coerce")
    in_range = parsed.between(_NS_MIN, _NS_MAX)
    return parsed.where(in_range).astype("datetime64[ns, UTC]")


def mark_suspect(created: pd.Series, now: datetime | None = None) -> pd.Series:
    """True where ``created`` is missing, before 2013 (incl. the 1970 epoch) or more than a day ahead."""
    now_ts = pd.Timestamp(now or datetime.now(timezone.utc))
    future = now_ts + timedelta(days=1)
    return created.isna() | (created < SUSPECT_BEFORE) | (created > future)


_IMAGE = object()
_NO_LAYER = (_IMAGE, None, None, None, None, False, None)


def build_frames(
    registry: str,
    tags: Sequence[TagRecord],
    errors: Iterable[ErrorRecord],
    repositories: Iterable[RepositoryRecord],
    now: datetime | None = None,
    referrers: Iterable[ReferrerRecord] = (),
) -> dict[str, pd.DataFrame]:
    """Records -> the six frames of the contract."""
    image_rows: list[tuple[object, ...]] = []
    # Columnar lists rather than row dicts: a crawl may hold millions of layer rows.
    layer_cols: dict[str, list[object]] = {c: [] for c in ["_image", *LAYER_ONLY]}
    add_layer = [layer_cols[c].append for c in ["_image", *LAYER_ONLY]]
    for record in tags:
        for image in record.images:
            image_id = len(image_rows)
            size = sum(s for _, s, _, _ in image.layers if s is not None) if image.layers else 0
            unknown = any(s is None for _, s, _, _ in image.layers)
            image_rows.append(
                (
                    registry,
                    record.repository,
                    record.tag,
                    record.digest,
                    record.media_type,
                    image.manifest_digest,
                    image.manifest_media_type,
                    image.parent_digest,
                    image.platform,
                    image.os_version,
                    image.kind,
                    image.subject_digest,
                    image.config_digest,
                    image.created,
                    image.config_size,
                    image.manifest_size,
                    record.digest_size,
                    None if unknown else size,
                    len(image.layers),
                    image.artifact_type,
                    image.config_media_type,
                    image.created_source,
                    image.referrer_source,
                    image.annotations,
                )
            )
            if not image.layers:
                # A manifest without layers (an OCI artifact, a nested index) still has its manifest
                # and config: one row with empty layer columns keeps them in the frame storage reads.
                for append, value in zip(add_layer, _NO_LAYER, strict=True):
                    append(image_id if value is _IMAGE else value)
            for index, (digest, layer_size, media_type, urls) in enumerate(image.layers):
                foreign = media_type in FOREIGN_LAYER_TYPES
                row = (image_id, index, digest, layer_size, media_type, foreign, " ".join(urls) or None)
                for append, value in zip(add_layer, row, strict=True):
                    append(value)
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
        "referrers": apply_schema(_referrers(image_frame, layer_frame, referrers, registry), "referrers"),
    }


# How a link was found, most telling first: one referrer found several ways is listed once.
_SOURCES = ["buildx-index", "cosign-tag", "tag-schema", "subject", "referrers-api"]


def _referrers(
    images: pd.DataFrame,
    layers: pd.DataFrame,
    listed: Iterable[ReferrerRecord],
    registry: str,
) -> pd.DataFrame:
    """One row per (repository, subject, referrer): every link the crawl found, however it found it."""
    linked = images[images["subject_digest"].notna()]
    stored = layers[layers["layer_digest"].notna() & ~layers["layer_foreign"]]
    layer_bytes = (
        stored.drop_duplicates(["manifest_digest", "layer_digest"])
        .groupby("manifest_digest", observed=True)["layer_size"]
        .sum()
    )
    own = linked["manifest_digest"].map(layer_bytes).astype("Int64").fillna(0)
    size = own + linked["config_size"].astype("Int64").fillna(0) + linked["manifest_size"].astype("Int64")
    found = pd.DataFrame(
        {
            "registry": registry,
            "repository": linked["repository"].astype(str),
            "subject_digest": linked["subject_digest"].astype(str),
            "referrer_digest": linked["manifest_digest"].astype(str),
            "kind": linked["kind"].astype(str),
            "artifact_type": linked["artifact_type"].astype(object),
            "referrer_source": linked["referrer_source"].astype(str),
            "tag": linked["tag"].astype(str),
            "size": size.to_numpy(),
            "created": linked["created"].to_numpy(),
        }
    )
    api = pd.DataFrame(
        [
            (
                registry,
                r.repository,
                r.subject_digest,
                r.digest,
                kind_of_type(r.artifact_type),
                r.artifact_type,
                "referrers-api",
                None,
                r.size,
                created_annotation(json.loads(r.annotations)) if r.annotations else None,
            )
            for r in listed
        ],
        columns=list(found.columns),
    )
    api["created"] = _parse_created(api["created"])
    out = pd.concat([found, api], ignore_index=True) if len(api) else found
    out["_rank"] = out["referrer_source"].map({s: i for i, s in enumerate(_SOURCES)})
    out = out.sort_values("_rank", kind="stable").drop_duplicates(
        ["repository", "subject_digest", "referrer_digest"]
    )
    present: set[tuple[str, str]] = set()
    if len(out):
        # Plain object arrays: iterating pandas 3's Arrow-backed strings costs a call per value.
        names = images["repository"].to_numpy(dtype=object)
        for column in ("digest", "manifest_digest"):
            present.update(zip(names, images[column].to_numpy(dtype=object), strict=True))
    out["subject_found"] = [
        (r, s) in present
        for r, s in zip(
            out["repository"].to_numpy(dtype=object),
            out["subject_digest"].to_numpy(dtype=object),
            strict=True,
        )
    ]
    return out.drop(columns="_rank")


def _tag_kind(record: TagRecord) -> tuple[str, str | None]:
    """(kind, subject digest) of what a tag points at."""
    if record.media_type in INDEX_TYPES:
        schema = tag_schema_subject(record.tag)
        return ("referrers-index", schema) if schema else ("index", None)
    if record.images:
        return record.images[0].kind, record.images[0].subject_digest
    return "image", None


def _platform_lists(tags: Sequence[TagRecord]) -> list[str]:
    """Per tag record, its platforms sorted and comma-joined, from the records (a per-group Python
    aggregation in pandas costs more than the whole crawl's parsing). Not nested indexes (their own
    bytes) nor the attestation manifests buildx puts in an index (unknown/unknown, referrers of a
    platform); Windows images differ by os.version alone (ltsc2019 vs ltsc2022), so it is shown."""
    labels: dict[tuple[str, str], set[str]] = {}
    for record in tags:
        found = labels.setdefault((record.repository, record.tag), set())
        for image in record.images:
            if image.kind == "index" or (image.kind == "attestation" and image.parent_digest is not None):
                continue
            version = image.os_version
            found.add(image.platform if version is None else f"{image.platform} ({version})")
    return [",".join(sorted(labels[record.repository, record.tag])) for record in tags]


def _tags_from_images(
    images: pd.DataFrame, layers: pd.DataFrame, tags: Sequence[TagRecord], registry: str
) -> pd.DataFrame:
    base = pd.DataFrame(
        [(registry, t.repository, t.tag, t.digest, t.media_type, t.digest_size, *_tag_kind(t)) for t in tags],
        columns=[
            "registry",
            "repository",
            "tag",
            "digest",
            "media_type",
            "digest_size",
            "kind",
            "subject_digest",
        ],
    )
    base["platforms"] = _platform_lists(tags)
    if images.empty:
        for column, value in (("created", pd.NaT), ("created_suspect", True), ("size", 0)):
            base[column] = value
        base["n_images"] = 0
        return base
    # A tag's images, counted and dated as its platforms are listed (see _platform_lists).
    platform_rows = (images["kind"].astype(str) != "index") & ~(
        (images["kind"].astype(str) == "attestation") & images["parent_digest"].notna()
    )
    platform_images = images[platform_rows]
    layer_rows = (layers["kind"].astype(str) != "index") & ~(
        (layers["kind"].astype(str) == "attestation") & layers["parent_digest"].notna()
    )
    layers = layers[layer_rows]
    grouped = platform_images.groupby(["repository", "tag"], sort=False, observed=True)
    summary = grouped.agg(created=("created", "max"), n_images=("manifest_digest", "size"))
    summary["created_suspect"] = grouped["created_suspect"].all()
    # Bytes of distinct layers across the tag's platforms: what pulling every platform fetches.
    unique = layers[layers["layer_digest"].notna()].drop_duplicates(["repository", "tag", "layer_digest"])
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
    out["created_suspect"] = out["created_suspect"].fillna(True).astype(bool)
    return out
