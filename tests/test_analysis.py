"""Analysis helpers on hand-built frames with answers worked out by hand."""

from __future__ import annotations

import matplotlib
import pandas as pd
import pytest

from dreg_frames import (
    EcrPolicy,
    GitLabPolicy,
    HarborPolicy,
    HarborRule,
    duplicates,
    plot_age,
    plot_layer_sharing,
    plot_storage,
    reclaimable,
    stale,
    storage_usage,
)

from .analysis_frames import NOW, d, frames, image, tag

matplotlib.use("Agg")


@pytest.fixture()
def app() -> dict[str, pd.DataFrame]:
    """team/app: five builds over two years, aliases on some; epoch and future dates; a multi-arch one."""
    base = ("base", 1000)
    tags = [
        tag("team/app", "v1", "m1", image("m1", "2024-01-01T00:00:00Z", [base, ("l1", 10)])),
        tag("team/app", "v2", "m2", image("m2", "2024-06-01T00:00:00Z", [base, ("l2", 20)])),
        tag("team/app", "keep-me", "m2", image("m2", "2024-06-01T00:00:00Z", [base, ("l2", 20)])),
        tag("team/app", "v3", "m3", image("m3", "2025-01-01T00:00:00Z", [base, ("l3", 30)])),
        tag("team/app", "v4", "m4", image("m4", "2026-10-01T00:00:00Z", [base, ("l4", 40)])),
        tag("team/app", "latest", "m4", image("m4", "2026-10-01T00:00:00Z", [base, ("l4", 40)])),
        tag("team/app", "repro", "m5", image("m5", "1970-01-01T00:00:00Z", [base, ("l5", 50)])),
        tag("team/app", "future", "m6", image("m6", "2030-01-01T00:00:00Z", [base, ("l6", 60)])),
        tag(
            "team/app",
            "multi",
            "idx",
            image("c-amd", "2023-01-01T00:00:00Z", [("amd", 100)], "linux/amd64"),
            image("c-arm", "2023-01-02T00:00:00Z", [("arm", 200)], "linux/arm64/v8"),
            index=True,
        ),
        tag("other/app", "v1", "m1", image("m1", "2024-01-01T00:00:00Z", [base, ("l1", 10)])),
    ]
    return frames(*tags)  # type: ignore[return-value]


def _digests(frame: pd.DataFrame) -> set[tuple[str, str]]:
    return set(zip(frame["repository"].astype(str), frame["digest"].astype(str), strict=True))


def test_stale_keeps_any_tag_kept_and_never_judges_suspect_dates(app: dict[str, pd.DataFrame]) -> None:
    out = stale(app["images"], older_than="90D", keep_latest=1, keep="keep-.*", now=NOW)
    # As GitLab orders it: m4 has 'latest', m2 has 'keep-me', m5/m6 are epoch/future dates; of the
    # rest (m1, m3, idx) the newest, m3, is kept by keep_latest=1. other/app's m1 is its newest.
    assert _digests(out) == {("team/app", d("m1")), ("team/app", d("idx"))}
    assert set(out["reason"]) == {"older_than"}
    assert all("older than 90 days" in e for e in out["explain"])
    every = stale(app["images"], older_than="90D", keep_latest=1, keep="keep-.*", now=NOW, include_kept=True)
    why = dict(
        zip(every["digest"].astype(str) + "@" + every["repository"].astype(str), every["reason"], strict=True)
    )
    assert why[f"{d('m2')}@team/app"] == "name_regex_keep"
    assert why[f"{d('m4')}@team/app"] == "latest"
    assert why[f"{d('m5')}@team/app"] == why[f"{d('m6')}@team/app"] == "suspect_date"
    assert why[f"{d('m3')}@team/app"] == why[f"{d('m1')}@other/app"] == "keep_n"
    # the multi-arch digest is one row, dated by its newest platform
    multi = every[every["digest"] == d("idx")].iloc[0]
    assert multi["created"] == pd.Timestamp("2023-01-02T00:00:00Z")


def test_stale_keep_latest_counts_digests_not_tags(app: dict[str, pd.DataFrame]) -> None:
    out = stale(app["images"], older_than=0, keep_latest=2, now=NOW, keep_latest_tag=False)
    # team/app non-suspect digests newest first: m4, m3, m2, m1, idx -> keep m4, m3
    assert {str(x) for x in out.loc[out["repository"] == "team/app", "digest"]} == {
        d("m2"),
        d("m1"),
        d("idx"),
    }


def test_stale_delete_regex_limits_candidates(app: dict[str, pd.DataFrame]) -> None:
    out = stale(app["images"], older_than="1D", keep_latest=0, delete=r"v\d+", now=NOW)
    # 'keep-me' on m2 does not match the delete pattern, so m2 stays; 'multi' likewise
    assert _digests(out) == {("team/app", d("m1")), ("team/app", d("m3")), ("other/app", d("m1"))}


def test_bad_duration_and_regex_are_named() -> None:
    frame = frames(tag("a", "t", "m", image("m", "2024-01-01T00:00:00Z", [("x", 1)])))["images"]
    with pytest.raises(ValueError, match=r"older_than.*'ninety'"):
        stale(frame, older_than="ninety", now=NOW)
    with pytest.raises(ValueError, match=r"name_regex_keep.*'\('"):
        stale(frame, keep="(", now=NOW)
    with pytest.raises(ValueError, match="needs columns"):
        stale(pd.DataFrame({"x": [1]}))


def test_gitlab_policy_is_stale(app: dict[str, pd.DataFrame]) -> None:
    policy = GitLabPolicy(keep_n=1, older_than="90d", name_regex_keep="keep-.*")
    ours = policy.evaluate(app["images"], NOW)
    assert _digests(ours[ours["candidate"]]) == _digests(stale(app["images"], "90d", 1, "keep-.*", now=NOW))


def test_harbor_policy(app: dict[str, pd.DataFrame]) -> None:
    policy = HarborPolicy(
        rules=[
            HarborRule(repositories="team/**", tags="v*", action="latestPushedK", n=2),
            HarborRule(repositories="team/**", tags="{latest,multi}", action="always"),
        ]
    )
    out = policy.evaluate(app["images"], NOW)
    candidates = _digests(out[out["candidate"]])
    # v-tagged: m4 (v4), m3 (v3) retained; m2 (v2, keep-me) and m1 (v1) not; multi always; latest m4
    assert candidates == {("team/app", d("m2")), ("team/app", d("m1"))}
    other = out[out["repository"] == "other/app"].iloc[0]
    assert not other["candidate"] and other["rule"] == "out_of_scope"
    with pytest.raises(ValueError, match="action"):
        HarborRule(action="sometimes")


def test_ecr_policy_from_json(app: dict[str, pd.DataFrame]) -> None:
    policy = EcrPolicy.from_json(
        """{"rules": [
          {"rulePriority": 1, "selection": {"tagStatus": "tagged", "tagPrefixList": ["keep"],
           "countType": "imageCountMoreThan", "countNumber": 100}, "action": {"type": "expire"}},
          {"rulePriority": 2, "selection": {"tagStatus": "tagged", "tagPatternList": ["v*"],
           "countType": "sinceImagePushed", "countUnit": "days", "countNumber": 365},
           "action": {"type": "expire"}},
          {"rulePriority": 3, "selection": {"tagStatus": "any", "countType": "imageCountMoreThan",
           "countNumber": 1}, "action": {"type": "expire"}}]}"""
    )
    out = policy.evaluate(app["images"], NOW)
    decided = {
        (r, str(g)): (c, rule)
        for r, g, c, rule in out[["repository", "digest", "candidate", "rule"]].itertuples(index=False)
    }
    assert decided[("team/app", d("m2"))] == (False, "priority 1")  # claimed by rule 1, kept
    assert decided[("team/app", d("m1"))] == (True, "priority 2")  # v1, older than a year
    assert decided[("team/app", d("m3"))] == (True, "priority 2")  # v3 from 2025-01-01
    assert decided[("team/app", d("m4"))] == (False, "priority 2")  # v4, recent
    assert decided[("team/app", d("idx"))] == (False, "priority 3")  # the only image left for rule 3
    assert decided[("team/app", d("m5"))][1] == "suspect_date"
    with pytest.raises(ValueError, match="lowest priority"):
        EcrPolicy.from_json(
            {
                "rules": [
                    {
                        "rulePriority": 1,
                        "selection": {
                            "tagStatus": "any",
                            "countType": "imageCountMoreThan",
                            "countNumber": 1,
                        },
                    },
                    {
                        "rulePriority": 2,
                        "selection": {
                            "tagStatus": "untagged",
                            "countType": "imageCountMoreThan",
                            "countNumber": 1,
                        },
                    },
                ]
            }
        ).evaluate(app["images"], NOW)


def test_duplicates_by_digest_and_by_content() -> None:
    same = [("base", 1000), ("l1", 10)]
    f = frames(
        tag("a/app", "v1", "m1", image("m1", "2024-01-01T00:00:00Z", same, config="cfg")),
        tag("a/app", "stable", "m1", image("m1", "2024-01-01T00:00:00Z", same, config="cfg")),
        tag("b/app", "v1", "m1", image("m1", "2024-01-01T00:00:00Z", same, config="cfg")),
        # the same config and layers in another manifest (e.g. an OCI copy of a Docker image)
        tag("c/app", "oci", "m1-oci", image("m1-oci", "2024-01-01T00:00:00Z", same, config="cfg")),
        tag("d/app", "solo", "m9", image("m9", "2024-01-01T00:00:00Z", [("l9", 5)])),
    )
    for source in (f["layers"], f["images"]):
        out = duplicates(source)
        by_kind = {k: g for k, g in out.groupby("kind")}
        digest_row = by_kind["digest"].iloc[0]
        assert digest_row["key"] == d("m1")
        assert digest_row["references"] == ["a/app:stable", "a/app:v1", "b/app:v1"]
        assert (digest_row["n_references"], digest_row["n_repositories"], digest_row["size"]) == (3, 2, 1010)
        content_row = by_kind["content"].iloc[0]
        assert content_row["key"] == d("cfg") and content_row["digests"] == sorted([d("m1"), d("m1-oci")])
        assert len(out) == 2


def test_storage_usage_counts_shared_layers_once(app: dict[str, pd.DataFrame]) -> None:
    usage = storage_usage(app["layers"]).set_index("repository")
    # other/app: one tag = base 1000 + l1 10 + config 100 + manifest 10
    other = usage.loc["other/app"]
    assert (other["logical_bytes"], other["stored_bytes"]) == (1120, 1120)
    assert other["exclusive_bytes"] == 0  # everything is also in team/app (same digest m1)
    team = usage.loc["team/app"]
    # distinct blobs: base 1000; l1..l6 = 210; 6 single manifests x (cfg 100 + manifest 10) = 660;
    # index 1 + two children x (cfg 100 + manifest 10) + amd 100 + arm 200 = 521
    assert team["stored_bytes"] == 1000 + 210 + 660 + 521
    assert team["exclusive_bytes"] == team["stored_bytes"] - 1120
    # logical: every tag's blobs in full; v2 and keep-me both count m2, v4 and latest both m4
    per_tag = {
        "v1": 1120,
        "v2": 1130,
        "keep-me": 1130,
        "v3": 1140,
        "v4": 1150,
        "latest": 1150,
        "repro": 1160,
        "future": 1170,
        "multi": 521,
    }
    assert team["logical_bytes"] == sum(per_tag.values())
    total = usage.loc["(registry total)"]
    assert total["stored_bytes"] == team["stored_bytes"]  # other/app adds no blob
    assert total["shared_bytes"] == 1120 and total["n_tags"] == 10
    assert str(usage["stored_bytes"].dtype) == "Int64"


def test_reclaimable_mark_and_sweep(app: dict[str, pd.DataFrame]) -> None:
    layers = app["layers"]
    # m1 in team/app: still tagged in other/app -> nothing freed
    assert reclaimable(layers, [("team/app", d("m1"))]).empty
    # m1 everywhere: l1, its config and manifest; the base layer is used by others
    freed = reclaimable(layers, [d("m1")])
    assert set(freed["blob"]) == {d("l1"), d("cfg-m1"), d("m1")} and freed["size"].sum() == 120
    # the index: children, their configs and layers go with it (GC with --delete-untagged)
    idx = reclaimable(layers, [("team/app", d("idx"))])
    assert idx["size"].sum() == 521 and set(idx["kind"]) == {"index", "manifest", "config", "layer"}
    # plain GC keeps the children: only the index blob goes
    plain = reclaimable(layers, [("team/app", d("idx"))], delete_untagged=False)
    assert list(plain["blob"]) == [d("idx")]
    # a child digest deleted under its tagged index: the index still lists (and so keeps) the
    # child's manifest, but nothing keeps its config and layer: GC frees them, and the image breaks
    child = reclaimable(layers, [("team/app", d("c-amd"))])
    assert set(child["blob"]) == {d("cfg-c-amd"), d("amd")}
    # stale output plugs straight in
    candidates = stale(app["images"], "90D", 1, "keep-.*", now=NOW)
    # team/app m1 is still tagged in other/app; the index frees its 521 bytes
    assert reclaimable(layers, candidates)["size"].sum() == 521


def test_plots_label_axes_and_units(app: dict[str, pd.DataFrame]) -> None:
    ax = plot_storage(app["layers"])
    assert ax.get_xlabel() == "size (KiB)" and ax.get_title() == "Storage per repository"
    assert [t.get_text() for t in ax.get_yticklabels()] == ["other/app", "team/app"]
    ax = plot_age(app["images"], now=NOW)
    assert "2 with suspect dates not shown" in ax.get_title()
    assert ax.get_xlabel().startswith("age")
    ax = plot_layer_sharing(app["layers"])
    assert ax.get_ylabel().startswith("layer bytes")
    import matplotlib.pyplot as plt

    _, axes = plt.subplots(1, 2)
    assert plot_age(app["images"], ax=axes[1], now=NOW) is axes[1]
    plt.close("all")
