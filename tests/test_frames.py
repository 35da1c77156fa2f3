"""Records -> frames, with hand-built records for the cases a Distribution 2.8 registry cannot serve."""

from __future__ import annotations

from datetime import datetime, timezone

import pandas as pd

from dreg_frames.crawl.frames import build_frames, mark_suspect
from dreg_frames.crawl.records import ImageRecord, RepositoryRecord, TagRecord

D = [f"sha256:{i:064x}" for i in range(10)]
NOW = datetime(2026, 11, 27, tzinfo=timezone.utc)


def test_schema1_sizes_are_unknown_not_zero() -> None:
    s1 = ImageRecord(
        D[1],
        "application/vnd.docker.distribution.manifest.v1+prettyjws",
        "linux/amd64",
        None,
        "2015-01-01T00:00:00Z",
        ((D[2], None, "", ()), (D[3], None, "", ())),
    )
    frames = build_frames(
        "r",
        [TagRecord("old/app", "v1", D[1], s1.manifest_media_type, (s1,))],
        [],
        [RepositoryRecord("old/app", 1, "ok")],
        NOW,
    )
    assert frames["layers"]["layer_size"].isna().all()
    assert pd.isna(frames["images"].loc[0, "size"])
    assert pd.isna(frames["tags"].loc[0, "size"])
    assert frames["images"].loc[0, "n_layers"] == 2


def test_empty_crawl_has_every_column_and_dtype() -> None:
    frames = build_frames("r", [], [], [], NOW)
    assert frames["layers"].empty and str(frames["layers"]["created"].dtype) == "datetime64[ns, UTC]"
    assert str(frames["tags"]["size"].dtype) == "Int64"


def test_tag_size_counts_a_layer_shared_by_platforms_once() -> None:
    amd = ImageRecord(
        D[1], "m", "linux/amd64", D[4], "2024-01-01T00:00:00Z", ((D[6], 100, "l", ()), (D[7], 10, "l", ()))
    )
    arm = ImageRecord(
        D[2], "m", "linux/arm64", D[5], "2024-02-01T00:00:00Z", ((D[6], 100, "l", ()), (D[8], 20, "l", ()))
    )
    frames = build_frames("r", [TagRecord("a", "t", D[0], "index", (amd, arm))], [], [], NOW)
    tag = frames["tags"].iloc[0]
    assert tag["size"] == 130
    assert tag["created"] == pd.Timestamp("2024-02-01T00:00:00Z")
    assert tag["platforms"] == "linux/amd64,linux/arm64"
    assert list(frames["images"]["size"]) == [110, 120]


def test_mark_suspect() -> None:
    created = pd.Series(
        pd.to_datetime(
            ["1970-01-01T00:00:00Z", "2020-01-01T00:00:00Z", "2027-01-01T00:00:00Z", None], utc=True
        )
    )
    assert list(mark_suspect(created, NOW)) == [True, False, True, True]
