"""Retention on usage (pull and push times from events) and in-use protection.

Hand-built events with answers worked out by hand, then the real registry: pulls made with skopeo
decide what a policy keeps, and a crawl's own pulls do not.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from dreg_frames import (
    EcrPolicy,
    HarborPolicy,
    HarborRule,
    Registry,
    crawl,
    in_use,
    make_layer,
    push_image,
    stale,
)
from dreg_frames.events import EventStore, load_events

from .analysis_frames import NOW, d, frames, image, tag
from .events_fixture import Setup, registry_with_receiver, skopeo, wait_for

DAY = pd.Timedelta(days=1)
T = pd.Timestamp(NOW)


def _event(
    action: str,
    repo: str,
    digest: str,
    when: pd.Timestamp,
    tag: str | None = None,
    agent: str = "containerd/1.7",
) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "timestamp": when.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "action": action,
        "target": {
            "repository": repo,
            "digest": d(digest),
            "tag": tag,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
        },
        "request": {"useragent": agent, "method": "GET"},
    }


@pytest.fixture()
def crawl_frames() -> dict[str, pd.DataFrame]:
    """team/app v1..v4 (all created in 2024, so all old) and a 1970-dated one; other/app v1."""
    return frames(  # type: ignore[return-value]
        tag("team/app", "v1", "m1", image("m1", "2024-01-01T00:00:00Z", [("a", 1)])),
        tag("team/app", "v2", "m2", image("m2", "2024-01-02T00:00:00Z", [("b", 1)])),
        tag("team/app", "v3", "m3", image("m3", "2024-01-03T00:00:00Z", [("c", 1)])),
        tag("team/app", "v4", "m4", image("m4", "2024-01-04T00:00:00Z", [("e", 1)])),
        tag("team/app", "repro", "m5", image("m5", "1970-01-01T00:00:00Z", [("f", 1)])),
        tag("other/app", "v1", "o1", image("o1", "2024-01-01T00:00:00Z", [("g", 1)])),
    )


@pytest.fixture()
def events(tmp_path: Path) -> pd.DataFrame:
    """m1 pulled 5 days ago; m2 pulled 120 days ago; m3 pushed 10 days ago, never pulled; m4 never
    seen; m5 (1970 date) pulled 200 days ago; a crawl pulled everything yesterday."""
    store = EventStore(tmp_path / "e.db")
    store.add(
        [
            _event("push", "team/app", "m1", T - 300 * DAY, "v1"),
            _event("pull", "team/app", "m1", T - 5 * DAY, "v1"),
            _event("pull", "team/app", "m2", T - 120 * DAY, "v2"),
            _event("push", "team/app", "m3", T - 10 * DAY, "v3"),
            _event("pull", "team/app", "m5", T - 200 * DAY, "repro"),
            *[
                _event("pull", "team/app", m, T - DAY, agent="dreg-frames/0.1")
                for m in ("m1", "m2", "m3", "m4")
            ],
        ]
    )
    return load_events(store)


def _verdicts(table: pd.DataFrame, column: str = "reason") -> dict[str, tuple[bool, str]]:
    team = table[table["repository"] == "team/app"]
    names = {d(f"m{i}"): f"m{i}" for i in range(1, 6)}
    return {
        names[str(g)]: (bool(c), str(r))
        for g, c, r in team[["digest", "candidate", column]].itertuples(index=False)
    }


def test_not_pulled_for_keeps_what_was_used(
    crawl_frames: dict[str, pd.DataFrame], events: pd.DataFrame
) -> None:
    out = stale(
        crawl_frames["images"], "90D", 0, now=T, not_pulled_for="90D", events=events,
        recording_start=T - 365 * DAY, include_kept=True,
    )  # fmt: skip
    verdicts = _verdicts(out)
    assert verdicts["m1"] == (False, "not_pulled_for")  # pulled 5 days ago
    assert verdicts["m2"] == (True, "older_than")  # last pulled 120 days ago
    assert verdicts["m3"] == (False, "not_pulled_for")  # pushed 10 days ago: too new to call unpulled
    assert verdicts["m4"] == (True, "older_than")  # a year of recording, no pull (the crawl's do not count)
    assert verdicts["m5"] == (False, "suspect_date")
    explain = dict(zip(out["digest"].astype(str), out["explain"], strict=True))
    assert "last pulled 120 days ago" in explain[d("m2")] and "more than 90 days" in explain[d("m2")]
    assert "no pull recorded since recording started" in explain[d("m4")]
    assert "pushed" in explain[d("m3")] and "within 90 days" in explain[d("m3")]
    assert {"last_pulled", "pulls_30d", "seen_since"} <= set(out.columns)


def test_a_new_recording_never_calls_anything_unpulled(
    crawl_frames: dict[str, pd.DataFrame], events: pd.DataFrame
) -> None:
    out = stale(
        crawl_frames["images"], "90D", 0, now=T, not_pulled_for="90D", events=events,
        recording_start=T - 2 * DAY, include_kept=True,
    )  # fmt: skip
    verdicts = _verdicts(out)
    # m2's last recorded pull is old, but the recording started 2 days ago: no evidence it was idle
    assert not any(candidate for candidate, _ in verdicts.values())
    m4 = out[out["digest"] == d("m4")].iloc[0]
    assert "recording started" in m4["explain"] and "within 90 days" in m4["explain"]
    # the recording start defaults to the store's own: created just now, so nothing is proven idle
    assert not stale(crawl_frames["images"], "90D", 0, now=T, not_pulled_for="90D", events=events)[
        "candidate"
    ].any()


def test_usage_rules_need_events(crawl_frames: dict[str, pd.DataFrame]) -> None:
    with pytest.raises(ValueError, match="load_events"):
        stale(crawl_frames["images"], not_pulled_for="30D", now=T)
    with pytest.raises(ValueError, match="load_events"):
        HarborPolicy([HarborRule(action="latestPulledN", n=1)]).evaluate(crawl_frames["images"], T)
    events = pd.DataFrame(columns=["timestamp", "action", "kind", "repository", "digest"])
    with pytest.raises(ValueError, match="recording_start"):
        stale(crawl_frames["images"], not_pulled_for="30D", now=T, events=events)


def test_harbor_pull_rules(crawl_frames: dict[str, pd.DataFrame], events: pd.DataFrame) -> None:
    policy = HarborPolicy(
        [HarborRule(repositories="team/**", action="latestPulledN", n=1)], min_history="30D"
    )
    out = policy.evaluate(crawl_frames["images"], T, events=events, recording_start=T - 365 * DAY)
    verdicts = _verdicts(out, "rule")
    # ranked by last pull: m1 (5 days), m2 (120), m5 (200); only m1 retained. m3 was pushed 10 days
    # ago with no pull: less than min_history, not judged. m4: a year without a pull.
    assert verdicts == {
        "m1": (False, "rule 1"),
        "m2": (True, "not_retained"),
        "m3": (False, "rule 1"),
        "m4": (True, "not_retained"),
        "m5": (True, "not_retained"),
    }
    text = dict(zip(out["digest"].astype(str), out["explain"], strict=True))
    assert "not judged" in text[d("m3")] and "#2 by last pull" in text[d("m2")]
    days = HarborPolicy([HarborRule(repositories="team/**", action="nDaysSinceLastPull", n=150)])
    verdicts = _verdicts(
        days.evaluate(crawl_frames["images"], T, events=events, recording_start=T - 365 * DAY), "rule"
    )
    assert {k for k, (candidate, _) in verdicts.items() if candidate} == {"m4", "m5"}
    assert _verdicts(out, "rule") == _verdicts(
        policy.evaluate(crawl_frames["images"], T, events=events, recording_start=T - 365 * DAY), "rule"
    )


def test_push_rules_read_push_events_over_created(
    crawl_frames: dict[str, pd.DataFrame], events: pd.DataFrame
) -> None:
    policy = HarborPolicy([HarborRule(repositories="team/**", action="nDaysSinceLastPush", n=30)])
    by_created = _verdicts(policy.evaluate(crawl_frames["images"], T), "rule")
    assert by_created["m3"] == (True, "not_retained")  # created in 2024
    by_push = policy.evaluate(crawl_frames["images"], T, events=events, recording_start=T - 365 * DAY)
    assert _verdicts(by_push, "rule")["m3"] == (False, "rule 1")  # pushed 10 days ago
    m1 = by_push[by_push["digest"] == d("m1")].iloc[0]
    assert "push event" in m1["explain"]
    m4 = by_push[by_push["digest"] == d("m4")].iloc[0]
    assert "created date; no push recorded" in m4["explain"]


def test_ecr_since_image_pulled(crawl_frames: dict[str, pd.DataFrame], events: pd.DataFrame) -> None:
    policy = EcrPolicy.from_json(
        {
            "rules": [
                {
                    "rulePriority": 1,
                    "selection": {"tagStatus": "any", "countType": "sinceImagePulled", "countNumber": 60},
                }
            ]
        }
    )
    out = policy.evaluate(crawl_frames["images"], T, events=events, recording_start=T - 365 * DAY)
    assert {k for k, (c, _) in _verdicts(out, "rule").items() if c} == {"m2", "m4", "m5"}
    other = out[out["repository"] == "other/app"].iloc[0]
    assert other["candidate"] and "no pull recorded since recording started" in other["explain"]


def _pods(images: list[tuple[str, str, str, str]]) -> dict[str, Any]:
    """kubectl get pods -A -o json, as the API server answers: (namespace, pod, image, imageID)."""
    items = []
    for namespace, pod, image_ref, image_id in images:
        items.append(
            {
                "kind": "Pod",
                "metadata": {"namespace": namespace, "name": pod},
                "spec": {"containers": [{"name": "app", "image": image_ref}]},
                "status": {"containerStatuses": [{"name": "app", "image": image_ref, "imageID": image_id}]},
            }
        )
    return {"apiVersion": "v1", "kind": "List", "items": items}


def test_images_in_use_are_kept_and_say_by_whom(
    tmp_path: Path, crawl_frames: dict[str, pd.DataFrame]
) -> None:
    host = "registry.example.com:5000"
    pods = _pods(
        [
            # started as v1, but the node runs m2 (the tag moved since): both are kept
            ("prod", "web-7d9f", f"{host}/team/app:v1", f"docker-pullable://{host}/team/app@{d('m2')}"),
            ("dev", "job-1", "nginx:1.25", "docker.io/library/nginx@" + d("zz")),  # another registry
            ("dev", "other", "elsewhere.io/team/app:v4", ""),  # same name on another host: not ours
        ]
    )
    path = tmp_path / "pods.json"
    path.write_text(json.dumps(pods))
    images = crawl_frames["images"].assign(registry=host)
    out = stale(images, "90D", 0, now=T, keep=path, include_kept=True)
    verdicts = _verdicts(out)
    assert verdicts["m1"] == (False, "in_use") and verdicts["m2"] == (False, "in_use")
    assert verdicts["m3"] == verdicts["m4"] == (True, "older_than")
    explain = out[out["digest"] == d("m2")].iloc[0]["explain"]
    assert explain.startswith("in use by prod/web-7d9f") and "would be deleted" in explain

    keep_list = tmp_path / "keep.csv"
    keep_list.write_text("image,used_by\nteam/app:v3,nightly batch\nother/app@" + d("o1") + ",\n")
    out = stale(images, "90D", 0, now=T, keep=[keep_list, r"v4"], include_kept=True)
    assert _verdicts(out)["m3"] == (False, "in_use") and _verdicts(out)["m4"] == (False, "name_regex_keep")
    assert "in use by nightly batch" in out[out["digest"] == d("m3")].iloc[0]["explain"]
    assert not out[out["repository"] == "other/app"].iloc[0]["candidate"]

    refs = in_use(pd.DataFrame({"repository": ["team/app"], "digest": [d("m1")], "used_by": ["ci"]}))
    policy = HarborPolicy([HarborRule(repositories="team/**", action="latestPushedK", n=1)])
    verdicts = _verdicts(policy.evaluate(images, T, in_use=refs), "rule")
    assert verdicts["m1"] == (False, "in_use") and verdicts["m2"] == (True, "not_retained")
    with pytest.raises(ValueError, match="image"):
        in_use(pd.DataFrame({"name": ["x"]}))


# ---- the real registry -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    with registry_with_receiver(tmp_path_factory.mktemp("usage") / "events.db") as value:
        yield value


def test_pulled_recently_kept_others_proposed(setup: Setup) -> None:
    registry = Registry.build_with_manual_client(setup.registry.url)
    repo = registry.repository("usage/app")
    pushed = {
        name: push_image(
            repo, [make_layer({"x": name.encode()})], tags=[name], created="2024-01-01T00:00:00Z"
        ).digest
        for name in ("a", "b", "c", "d")
    }
    wait_for(
        "the pushes to be recorded", lambda: setup.receiver.store.count() >= len(setup.control.ids()) > 0
    )
    time.sleep(0.3)  # pulls strictly after every push, by the registry's clock
    mark = pd.Timestamp.now(tz="UTC")
    port = setup.registry.port
    for name in ("a", "c"):
        skopeo("inspect", "--raw", "--tls-verify=false", f"docker://127.0.0.1:{port}/usage/app:{name}")
    result = crawl(registry, ["usage/app"], progress=False)  # pulls everything, as dreg-frames
    wait_for("every event to be stored", lambda: setup.receiver.store.count() >= len(setup.control.ids()))

    events = load_events(setup.store)
    pulls = events[(events["action"] == "pull") & (events["repository"] == "usage/app")]
    assert set(pulls["digest"].astype(str)) == {pushed["a"], pushed["c"]}  # the crawl's pulls left out
    assert (pulls["timestamp"] > mark).all()
    pushes = events[(events["action"] == "push") & (events["repository"] == "usage/app")]
    now = pulls["timestamp"].max() + pd.Timedelta(milliseconds=1)
    window = now - mark
    assert (now - pushes["timestamp"] > window).all()  # every push is older than the window

    out = stale(
        result.images, older_than=None, keep_latest=None, now=now, not_pulled_for=window,
        events=events, recording_start=events.attrs["recording_start"], include_kept=True,
    )  # fmt: skip
    decided = dict(zip(out["digest"].astype(str), out["candidate"], strict=True))
    assert decided == {pushed["a"]: False, pushed["b"]: True, pushed["c"]: False, pushed["d"]: True}
    # the same through a crawl that carries the events
    joined = result.with_events(events)
    again = stale(joined.images, older_than=None, keep_latest=None, now=now, not_pulled_for=window)
    assert set(again["digest"].astype(str)) == {pushed["b"], pushed["d"]}
    # had the recording started at the mark, b and d would not be called unpulled
    assert stale(
        result.images, older_than=None, keep_latest=None, now=now, not_pulled_for=window, events=events,
        recording_start=mark + pd.Timedelta(milliseconds=1),
    ).empty  # fmt: skip
