"""The cleanup widget driven in-process against the real registry, as its front end drives it.

The first two tests are issue 16's safety defects; they were written against the old widget first
and failed there (a dry-run question confirmed after unticking deleted for real; the box stayed
unticked after a real delete)."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import pytest

from dreg_frames import LocalRegistry, Registry, crawl, duplicates, make_layer, push_image
from dreg_frames.widgets import CleanupWidget, delete_widget

from .conftest import unique_name


def _audit(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture()
def scene(registry: Registry) -> dict[str, Any]:
    """One repository: old (tags old, old2), mid (latest), new (v9, the newest image)."""
    repo = registry.repository(unique_name("widget"))
    old = push_image(repo, [make_layer({"o": b"old" * 50})], ["old", "old2"], created="2023-01-01T00:00:00Z")
    mid = push_image(repo, [make_layer({"m": b"mid" * 50})], ["latest"], created="2023-06-01T00:00:00Z")
    new = push_image(repo, [make_layer({"n": b"new" * 50})], ["v9"], created="2024-01-01T00:00:00Z")
    result = crawl(registry, [repo.name], progress=False)
    return {"repo": repo, "old": old, "mid": mid, "new": new, "result": result}


def key(repo: Any, image: Any) -> str:
    return f"{repo.name}@{image.digest}"


def front_end(w: CleanupWidget, **content: Any) -> None:
    """What the browser sends: a custom message on the widget's comm."""
    w._on_message(w, content)


def test_dry_run_unticked_after_the_question_does_not_delete(
    scene: dict[str, Any], registry: Registry, tmp_path: Path
) -> None:
    repo, old = scene["repo"], scene["old"]
    log = tmp_path / "audit.csv"
    w = delete_widget(registry, scene["result"], audit_log=log)
    w.select([key(repo, old)])
    assert w.dry_run is True
    w.ask()
    assert w.question["dry_run"] is True and w.question["confirm_label"] == "Confirm dry run"
    w.dry_run = False  # the box changes while the question is open: the question is withdrawn
    assert w.question == {} and "withdrawn" in w.messages
    assert w.confirm() is None
    assert repo.check_manifest(old.digest) == old.digest
    assert not log.exists() or all(r["dry_run"] == "True" for r in _audit(log))
    # the race as the browser sends it: the box change, then a click on the stale confirm button
    w.dry_run = True
    w.ask()
    token = w.question["token"]
    w.dry_run = False
    front_end(w, action="confirm", token=token, dry_run=True)
    assert repo.check_manifest(old.digest) == old.digest
    assert not log.exists() or all(r["dry_run"] == "True" for r in _audit(log))
    # asked unticked: the button says so, and confirming deletes
    w.ask()
    assert w.question["dry_run"] is False and w.question["confirm_label"] == "Delete for real"
    front_end(w, action="confirm", token=w.question["token"], dry_run=False)
    assert repo.check_manifest(old.digest) is None
    assert [(r["dry_run"], r["outcome"]) for r in _audit(log)] == [
        ("False", "deleting"),
        ("False", "deleted"),
    ]


def test_after_a_real_delete_dry_run_is_ticked_again_and_risky_picks_warn(
    scene: dict[str, Any], registry: Registry, tmp_path: Path
) -> None:
    repo, old, mid, new = scene["repo"], scene["old"], scene["mid"], scene["new"]
    w = delete_widget(registry, scene["result"], audit_log=tmp_path / "audit.csv")
    rows = {r["key"]: r for r in w.rows}
    assert rows[key(repo, old)]["risks"] == []
    assert any("latest" in r for r in rows[key(repo, mid)]["risks"])
    assert any("newest" in r for r in rows[key(repo, new)]["risks"])
    w.dry_run = False
    w.select([key(repo, old)])
    w.ask()
    w.confirm()
    assert repo.check_manifest(old.digest) is None
    assert w.dry_run is True and w.selected == [] and "ticked again" in w.messages
    w.select([key(repo, mid), key(repo, new)])
    w.ask()
    risks = " ".join(w.question["risks"])
    assert "tagged latest" in risks and "newest image" in risks
    w.cancel()
    assert repo.check_manifest(mid.digest) == mid.digest


def test_one_question_per_batch_and_per_row_outcomes(
    scene: dict[str, Any], registry: Registry, tmp_path: Path
) -> None:
    repo, old, mid, new = scene["repo"], scene["old"], scene["mid"], scene["new"]
    log = tmp_path / "audit.csv"
    w = delete_widget(registry, scene["result"], audit_log=log)
    assert w.audit == [] and "no audit entries yet" in w.audit_view().value
    w.select([key(repo, old), key(repo, mid)])
    w.ask()
    q = w.question
    assert q["n"] == 2 and sorted(q["tags"]) == sorted(f"{repo.name}:{t}" for t in ("old", "old2", "latest"))
    # two images of distinct layers: GC frees both manifests, configs and layers
    expected = sum(len(m.raw) + m.config.size + sum(layer.size for layer in m.layers) for m in (old, mid))
    assert q["bytes"] == expected and "2 digests, 3 tags" in q["text"]
    w.select([key(repo, old)])  # the selection changes: the question is withdrawn
    assert w.question == {} and w.confirm() is None
    # a tag moves behind the widget's back: that row is skipped, the other is a dry run
    w.select([key(repo, old), key(repo, mid)])
    w.ask()
    repo.tag(new.digest, "latest")
    view = w.audit_view()
    done = w.confirm()
    assert done is not None and list(done["outcome"]) == ["dry run", "skipped"]
    outcomes = {r["key"]: r["outcome"] for r in w.rows}
    assert outcomes[key(repo, old)] == "dry run" and outcomes[key(repo, mid)] == "skipped"
    assert len(w.audit) == 2 and "skipped" in view.value  # the audit view follows the log live
    assert sorted(repo.tags()) == ["latest", "old", "old2", "v9"]


def test_confirm_without_question_and_deletes_disabled(
    nodelete_server: LocalRegistry, tmp_path: Path
) -> None:
    registry = Registry.build_with_manual_client(nodelete_server.url)
    repo = registry.repository(unique_name("nodel-widget"))
    pushed = push_image(repo, [make_layer({"w": b"w"})], ["v1"])
    w = delete_widget(registry, crawl(registry, [repo.name], progress=False), audit_log=tmp_path / "a.csv")
    w.confirm()
    assert "Nothing is waiting" in w.messages
    w.ask()
    assert "Tick at least one" in w.messages
    with pytest.raises(ValueError, match="not a candidate"):
        w.select(["nope/x@sha256:" + "0" * 64])
    w.dry_run = False
    w.select([(repo.name, pushed.digest)])
    w.ask()
    assert "refuses deletes" in w.messages and w.question == {}
    assert w.rows[0]["outcome"] == "blocked" and repo.tags() == ["v1"]


def test_duplicates_as_candidates_and_a_bounded_log(scene: dict[str, Any], registry: Registry) -> None:
    repo, old = scene["repo"], scene["old"]
    w = delete_widget(registry, scene["result"], candidates=duplicates(scene["result"]))
    assert [r["key"] for r in w.rows] == [key(repo, old)]  # two tags on one digest: a duplicate
    row = w.rows[0]
    assert (
        row["tags"] == ["old", "old2"] and row["created"] == "2023-01-01" and row["size_text"].endswith("B")
    )
    for i in range(80):
        w.say(f"line {i}")
    assert len(w.log) == 50 and w.log[-1] == "line 79"


def test_the_static_fallback_names_the_candidates(scene: dict[str, Any], registry: Registry) -> None:
    w = delete_widget(registry, scene["result"])
    data, _ = w._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in data
    assert "old, old2" in data["text/html"] and "2023-01-01" in data["text/html"]
