"""The sample data: the saved crawl matches a fresh crawl of the seeded sample registry."""

from __future__ import annotations

import pandas as pd

from dreg_frames import load_sample
from dreg_frames.demo import SAMPLE_REGISTRY, crawl_sample
from dreg_frames.sample import load_spec


def test_saved_sample_matches_a_fresh_crawl() -> None:
    saved = load_sample()
    fresh = crawl_sample()
    assert saved.meta["registry"] == SAMPLE_REGISTRY
    for name in ("tags", "images", "layers", "repositories"):
        pd.testing.assert_frame_equal(
            saved.frames[name], fresh.frames[name], check_categorical=False, obj=name
        )


def test_sample_covers_what_the_demo_promises() -> None:
    sample = load_sample()
    spec = load_spec()
    artifacts = spec.get("artifacts", [])  # one tag each: a signature, an SBOM's referrers index, a chart
    assert len(sample.tags) == sum(len(image["tags"]) for image in spec["images"]) + len(artifacts)
    assert set(sample.tags["kind"].astype(str)) == {
        "image",
        "index",
        "signature",
        "referrers-index",
        "helm-chart",
    }
    assert set(sample.referrers["kind"].astype(str)) == {"signature", "sbom"}
    media = set(sample.tags["media_type"].astype(str))
    assert {
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    } <= media
    assert sample.images["created_suspect"].any()
    assert (sample.layers["repository"].str.split("/").str[0].nunique()) >= 4
