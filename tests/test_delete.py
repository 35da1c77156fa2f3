"""Safe delete against the real registry: plan, dry run, moved tags, audit log (widget: test_widgets.py)."""

from __future__ import annotations

import csv
from pathlib import Path

import pandas as pd
import pytest

from dreg_frames import LocalRegistry, Registry, crawl, make_layer, push_image, push_multiarch
from dreg_frames.delete import AUDIT_COLUMNS, AuditLogError, execute, plan_delete

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
    # the intent row goes to the log before the DELETE is sent, the outcome after it
    assert [r["outcome"] for r in rows] == ["deleting", "deleted", "already gone"]
    assert rows[1]["user"] == "auditor" and rows[1]["registry"] == registry.client.host
    assert int(rows[1]["bytes"]) == len(old.raw) + old.config.size  # type: ignore[attr-defined]


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


def test_duplicates_output_feeds_the_plan(scene: dict[str, object], registry: Registry) -> None:
    from dreg_frames import duplicates

    one, old = scene["one"], scene["old"]
    dupes = duplicates(scene["result"])  # old has two tags in one repository: a digest duplicate
    plan = plan_delete(scene["result"], dupes)
    assert (one.name, old.digest) in set(zip(plan["repository"], plan["digest"], strict=True))  # type: ignore[attr-defined]
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


# -- execute trusts the live registry, not the plan frame (issue 12) -----------------------------------


def test_a_recheck_that_cannot_run_deletes_nothing(registry_server: LocalRegistry, tmp_path: Path) -> None:
    from .fault_proxy import Exchange, FaultProxy, Reply

    with FaultProxy(registry_server.port or 0) as proxy:
        registry = Registry.build_with_manual_client(proxy.url, retry=0)
        repo = registry.repository(unique_name("recheck"))
        pushed = push_image(repo, [make_layer({"r": b"recheck"})], ["a"])
        plan = plan_delete(crawl(registry, [repo.name], progress=False), [(repo.name, pushed.digest)])
        repo.tag(pushed.digest, "b")  # a tag the plan never showed; the tags list will not say so

        def broken_tags(exchange: Exchange, forward: object) -> Reply | None:
            return Reply(500, {}, b"oops") if "/tags/list" in exchange.path else None

        proxy.rules.append(broken_tags)
        done = execute(registry, plan, dry_run=False, audit_log=tmp_path / "a.csv")
        proxy.rules.clear()
        assert list(done["outcome"]) == ["skipped"]
        assert "re-check could not run" in done["error"].iloc[0] and "ServerError" in done["error"].iloc[0]
        assert not [e for e in proxy.seen if e.method == "DELETE" and pushed.digest in e.path]
        assert sorted(repo.tags()) == ["a", "b"]


def test_blocked_is_derived_again_at_execute_time(registry: Registry, tmp_path: Path) -> None:
    repo = registry.repository(unique_name("rederive"))
    index = push_multiarch(
        repo,
        {"linux/amd64": [make_layer({"x": b"amd"})], "linux/arm64": [make_layer({"x": b"arm"})]},
        ["multi"],
    )
    child = index.manifests[0].digest
    repo.tag(child, "plat")  # the child is also tagged on its own
    result = crawl(registry, [repo.name], progress=False)
    unknown = "sha256:" + "c" * 64
    plan = plan_delete(result, [(repo.name, child), (repo.name, unknown)])
    assert plan["blocked"].all()
    forged = plan.assign(blocked=False)  # a frame edited by hand, or a bug upstream
    done = execute(registry, forged, dry_run=False, audit_log=tmp_path / "a.csv")
    outcomes = dict(zip(done["digest"], zip(done["outcome"], done["error"], strict=True), strict=True))
    assert (
        outcomes[child][0] == "skipped"
        and f"a platform manifest of index {index.digest}" in outcomes[child][1]
    )
    assert outcomes[unknown][0] == "blocked" and "no tag" in outcomes[unknown][1]
    assert repo.check_manifest(child) == child and repo.check_manifest("multi") == index.digest


def test_the_audit_row_is_written_before_the_delete(
    scene: dict[str, object], registry: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dreg_frames.client.repository import Repository

    one, old = scene["one"], scene["old"]
    plan = plan_delete(scene["result"], [(one.name, old.digest)])  # type: ignore[attr-defined]
    log = tmp_path / "audit.csv"
    logged_before: list[list[str]] = []
    real_delete = Repository.delete_manifest

    def delete_then_ctrl_c(self: Repository, digest: str) -> None:
        logged_before.append([r["outcome"] for r in _audit(log) if r["digest"] == digest])
        real_delete(self, digest)
        raise KeyboardInterrupt  # the user gives up right after the registry accepted it

    monkeypatch.setattr(Repository, "delete_manifest", delete_then_ctrl_c)
    with pytest.raises(KeyboardInterrupt):
        execute(registry, plan, dry_run=False, audit_log=log)
    assert logged_before == [["deleting"]]
    assert [r["outcome"] for r in _audit(log)] == ["deleting", "interrupted"]
    assert one.check_manifest(old.digest) is None  # type: ignore[attr-defined]  # it did happen
