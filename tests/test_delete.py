"""Safe delete against the real registry: plan, dry run, moved tags, audit log, and the widget."""

from __future__ import annotations

import csv
from pathlib import Path

import pandas as pd
import pytest

from dreg_frames import LocalRegistry, Registry, crawl, make_layer, push_image, push_multiarch
from dreg_frames.delete import AUDIT_COLUMNS, AuditLogError, execute, plan_delete
from dreg_frames.widgets import delete_widget

from .conftest import unique_name


def _audit(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture()
def scene(registry: Registry) -> dict[str, object]:
    """old (tags a, b), keep (tag keep) in one repository; an image sharing old's layer in a second
    one; a multi-arch index in a third."""
    one, two, three = (registry.repository(unique_name(n)) for n in ("del-one", "del-two", "del-three"))
    old = push_image(one, [make_layer({"o": b"old" * 100})], ["a", "b"], created="2023-01-01T00:00:00Z")
    keep = push_image(one, [make_layer({"k": b"keep" * 100})], ["keep"], created="2025-01-01T00:00:00Z")
    push_image(two, [make_layer({"o": b"old" * 100})], ["copy"], created="2023-06-01T00:00:00Z")
    index = push_multiarch(
        three,
        {"linux/amd64": [make_layer({"x": b"1"})], "linux/arm64/v8": [make_layer({"x": b"2"})]},
        ["multi"],
    )
    result = crawl(registry, [one.name, two.name, three.name], progress=False)
    return {
        "one": one,
        "two": two,
        "three": three,
        "old": old,
        "keep": keep,
        "index": index,
        "result": result,
    }


def test_plan_lists_every_tag_and_warns(scene: dict[str, object], registry: Registry) -> None:
    one, three, old = scene["one"], scene["three"], scene["old"]
    index = scene["index"]
    child = index.manifests[0].digest  # type: ignore[attr-defined]
    unknown = "sha256:" + "e" * 64
    plan = plan_delete(
        scene["result"],
        [(one.name, old.digest), (three.name, child), (one.name, unknown)],  # type: ignore[attr-defined]
        registry=registry,
    )
    rows = {r["digest"]: r for r in plan.to_dict("records")}
    assert rows[old.digest]["tags"] == ("a", "b") and not rows[old.digest]["blocked"]  # type: ignore[attr-defined]
    # the layer lives on in the second repository: the manifest and config are freed
    assert rows[old.digest]["reclaimable_bytes"] == len(old.raw) + old.config.size  # type: ignore[attr-defined]
    assert rows[child]["blocked"] and "index" in rows[child]["warnings"][0]
    assert rows[unknown]["blocked"] and "unknown to the crawl" in rows[unknown]["warnings"][0]


def test_dry_run_changes_nothing_but_the_log(
    scene: dict[str, object], registry: Registry, tmp_path: Path
) -> None:
    one, old = scene["one"], scene["old"]
    plan = plan_delete(scene["result"], [(one.name, old.digest)])  # type: ignore[attr-defined]
    log = tmp_path / "audit.csv"
    done = execute(registry, plan, audit_log=log)
    assert list(done["outcome"]) == ["dry run"]
    assert sorted(one.tags()) == ["a", "b", "keep"]  # type: ignore[attr-defined]
    rows = _audit(log)
    assert list(rows[0]) == AUDIT_COLUMNS
    assert rows[0]["dry_run"] == "True" and rows[0]["outcome"] == "dry run" and rows[0]["tags"] == "a b"


def test_delete_removes_the_digest_and_its_tags_only(
    scene: dict[str, object], registry: Registry, tmp_path: Path
) -> None:
    one, two, old, keep = scene["one"], scene["two"], scene["old"], scene["keep"]
    log = tmp_path / "audit.csv"
    plan = plan_delete(scene["result"], [(one.name, old.digest)])  # type: ignore[attr-defined]
    done = execute(registry, plan, dry_run=False, audit_log=log, user="auditor")
    assert list(done["outcome"]) == ["deleted"], done["error"].tolist()
    assert one.tags() == ["keep"]  # type: ignore[attr-defined]
    assert one.check_manifest(old.digest) is None  # type: ignore[attr-defined]
    assert one.check_manifest("keep") == keep.digest  # type: ignore[attr-defined]
    assert two.tags() == ["copy"]  # type: ignore[attr-defined]
    # a second run appends; the digest is gone now
    again = execute(registry, plan, dry_run=False, audit_log=log, user="auditor")
    assert list(again["outcome"]) == ["already gone"]
    rows = _audit(log)
    assert [r["outcome"] for r in rows] == ["deleted", "already gone"]
    assert rows[0]["user"] == "auditor" and rows[0]["registry"] == registry.client.host
    assert int(rows[0]["bytes"]) == len(old.raw) + old.config.size  # type: ignore[attr-defined]


def test_a_tag_moved_after_planning_is_skipped(
    scene: dict[str, object], registry: Registry, tmp_path: Path
) -> None:
    one, old, keep = scene["one"], scene["old"], scene["keep"]
    plan = plan_delete(scene["result"], [(one.name, old.digest)])  # type: ignore[attr-defined]
    one.tag(keep.digest, "b")  # type: ignore[attr-defined]  # someone re-points b
    done = execute(registry, plan, dry_run=False, audit_log=tmp_path / "a.csv")
    assert list(done["outcome"]) == ["skipped"] and "b ->" in done["error"].iloc[0]
    assert one.check_manifest(old.digest) == old.digest  # type: ignore[attr-defined]


def test_a_new_tag_on_the_digest_is_skipped(
    scene: dict[str, object], registry: Registry, tmp_path: Path
) -> None:
    one, old = scene["one"], scene["old"]
    plan = plan_delete(scene["result"], [(one.name, old.digest)])  # type: ignore[attr-defined]
    one.tag(old.digest, "hotfix")  # type: ignore[attr-defined]  # a tag the user never saw
    done = execute(registry, plan, dry_run=False, audit_log=tmp_path / "a.csv")
    assert list(done["outcome"]) == ["skipped"] and "hotfix" in done["error"].iloc[0]
    assert one.check_manifest("hotfix") == old.digest  # type: ignore[attr-defined]


def test_deletes_disabled_is_reported_cleanly(nodelete_server: LocalRegistry, tmp_path: Path) -> None:
    registry = Registry.build_with_manual_client(nodelete_server.url)
    repo = registry.repository(unique_name("nodel"))
    pushed = push_image(repo, [make_layer({"n": b"n"})], ["v1"])
    result = crawl(registry, [repo.name], progress=False)
    plan = plan_delete(result, [pushed.digest], registry=registry)
    assert plan["blocked"].iloc[0] and "refuses deletes" in plan["warnings"].iloc[0][0]
    unchecked = plan_delete(result, [pushed.digest])
    done = execute(registry, unchecked, dry_run=False, audit_log=tmp_path / "a.csv")
    assert list(done["outcome"]) == ["refused"] and "storage.delete" in done["error"].iloc[0]
    assert repo.tags() == ["v1"]


def test_audit_log_is_never_overwritten(tmp_path: Path, registry: Registry) -> None:
    log = tmp_path / "notes.csv"
    log.write_text("my,own,spreadsheet\n")
    with pytest.raises(AuditLogError, match="refusing to append"):
        execute(registry, pd.DataFrame({"repository": [], "digest": [], "tags": []}), audit_log=log)
    assert log.read_text() == "my,own,spreadsheet\n"


def test_widget_dry_run_then_delete(scene: dict[str, object], registry: Registry, tmp_path: Path) -> None:
    one, old, keep = scene["one"], scene["old"], scene["keep"]
    log = tmp_path / "audit.csv"
    w = delete_widget(registry, scene["result"], audit_log=log)
    w.repository.value = one.name  # type: ignore[attr-defined]
    w.digest.value = old.digest  # type: ignore[attr-defined]
    assert "a, b" in w.details.value and "garbage collection would free" in w.details.value
    assert w.dry_run.value is True
    w.delete_button.click()
    assert w.confirm_box.layout.display == "flex" and "Confirm" in w.messages
    w.confirm_button.click()
    assert "Dry run" in w.messages and sorted(one.tags()) == ["a", "b", "keep"]  # type: ignore[attr-defined]
    w.dry_run.value = False
    w.delete_button.click()
    w.cancel_button.click()
    assert "Cancelled" in w.messages and one.check_manifest(old.digest) == old.digest  # type: ignore[attr-defined]
    w.delete_button.click()
    w.confirm_button.click()
    assert "Deleted" in w.messages
    assert one.tags() == ["keep"] and one.check_manifest("keep") == keep.digest  # type: ignore[attr-defined]
    assert bool(w.frame.loc[w.frame["digest"] == old.digest, "deleted"].iloc[0])  # type: ignore[attr-defined]
    assert old.digest not in [v for _, v in w.digest.options]  # type: ignore[attr-defined]
    assert [r["outcome"] for r in _audit(log)] == ["dry run", "deleted"]


def test_widget_confirm_without_ask_and_deletes_disabled(
    nodelete_server: LocalRegistry, tmp_path: Path
) -> None:
    registry = Registry.build_with_manual_client(nodelete_server.url)
    repo = registry.repository(unique_name("nodel-widget"))
    pushed = push_image(repo, [make_layer({"w": b"w"})], ["v1"])
    w = delete_widget(registry, crawl(registry, [repo.name], progress=False), audit_log=tmp_path / "a.csv")
    w.confirm_button.click()
    assert "Nothing is waiting" in w.messages
    w.repository.value = repo.name
    w.digest.value = pushed.digest
    w.dry_run.value = False
    w.delete_button.click()
    assert "refuses deletes" in w.messages and w.confirm_box.layout.display == "none"
    assert repo.tags() == ["v1"]


def test_duplicates_output_feeds_the_plan_and_the_widget(
    scene: dict[str, object], registry: Registry
) -> None:
    from dreg_frames import duplicates

    one, old = scene["one"], scene["old"]
    dupes = duplicates(scene["result"])  # old has two tags in one repository: a digest duplicate
    plan = plan_delete(scene["result"], dupes)
    assert (one.name, old.digest) in set(zip(plan["repository"], plan["digest"], strict=True))  # type: ignore[attr-defined]
    w = delete_widget(registry, scene["result"], candidates=dupes)
    assert list(w.repository.options) == [one.name]  # type: ignore[attr-defined]
    assert [v for _, v in w.digest.options] == [old.digest]  # type: ignore[attr-defined]
    # opened with the first candidate selected and described, before the user touches anything
    assert w.digest.value == old.digest and "tags that go with it: <b>a, b</b>" in w.details.value  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match="candidates need"):
        plan_delete(scene["result"], pd.DataFrame({"x": [1]}))


def test_a_plan_read_back_from_csv_is_refused(
    scene: dict[str, object], registry: Registry, tmp_path: Path
) -> None:
    one, old = scene["one"], scene["old"]
    plan = plan_delete(scene["result"], [(one.name, old.digest)])  # type: ignore[attr-defined]
    plan.to_csv(tmp_path / "plan.csv", index=False)
    with pytest.raises(ValueError, match="plan again"):
        execute(registry, pd.read_csv(tmp_path / "plan.csv"), dry_run=False, audit_log=tmp_path / "a.csv")
    assert sorted(one.tags()) == ["a", "b", "keep"]  # type: ignore[attr-defined]
