"""Signatures, SBOMs, attestations, Helm charts and OCI artifacts on the real registry: first-class
rows, linked to their images, following them in retention, deleted with them, reported when
orphaned; and untag keeps the other tags. Content is built from the tools' public specs
(tests/shapes.py) and, for oras, pushed by a client nobody here wrote."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from dreg_frames import (
    Crawl,
    EcrPolicy,
    GitLabPolicy,
    HarborPolicy,
    HarborRule,
    LocalRegistry,
    Registry,
    crawl,
    execute,
    plan_delete,
    stale,
    storage_usage,
)
from dreg_frames.analysis.referrers import integrity, signed
from dreg_frames.delete import plan_untag

from .fault_proxy import Exchange, FaultProxy, Reply
from .shapes import (
    BuildxImage,
    CosignSet,
    HelmChart,
    OrasPushed,
    Pushed,
    Referrers,
    blob_store_bytes,
    push_buildx,
    push_cosign,
    push_helm_chart,
    push_ordinary,
    push_referrers,
    push_with_oras,
    run_garbage_collect,
)

NOW = pd.Timestamp("2026-11-27T00:00:00Z")


@dataclass
class Shelf:
    server: LocalRegistry
    registry: Registry
    old: Pushed  # team/app:v1, dated 2024-01-02, signed by cosign
    cosign: CosignSet
    kept: Pushed  # team/app:oci-multi, newer: its OCI 1.1 referrers
    referrers: Referrers
    buildx: BuildxImage
    helm: HelmChart
    oras: OrasPushed

    def crawl(self, *names: str) -> Crawl:
        return crawl(self.registry, list(names) or None, progress=False)


@pytest.fixture(scope="module")
def shelf(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shelf]:
    with LocalRegistry() as server:
        registry = Registry.build_with_manual_client(server.url)
        app = registry.repository("team/app")
        images = push_ordinary(app).images
        cosign = push_cosign(app, images["v1"])
        referrers = push_referrers(app, images["oci-multi"])
        buildx = push_buildx(registry.repository("team/buildx"))
        helm = push_helm_chart(registry.repository("charts/mychart"))
        oras = push_with_oras(
            registry.repository("team/oras"), tmp_path_factory.mktemp("oras"), subject=images["oci"]
        )
        yield Shelf(
            server, registry, images["v1"], cosign, images["oci-multi"], referrers, buildx, helm, oras
        )


def _links(result: Crawl) -> set[tuple[str, str, str, str]]:
    r = result.referrers
    return set(
        zip(
            r["repository"].astype(str),
            r["subject_digest"].astype(str),
            r["referrer_digest"].astype(str),
            r["referrer_source"].astype(str),
            strict=True,
        )
    )


def test_every_referrer_is_linked_to_its_subject(shelf: Shelf) -> None:
    result = shelf.crawl()
    assert result.errors.empty, result.errors[["repository", "tag", "message"]]
    links = _links(result)
    subject = shelf.old.digest
    for pushed in shelf.cosign.all:
        assert ("team/app", subject, pushed.digest, "cosign-tag") in links
    for pushed in shelf.referrers.referrers:
        assert ("team/app", shelf.kept.digest, pushed.digest, "tag-schema") in links
    for platform, attestation in shelf.buildx.attestations.items():
        target = shelf.buildx.platforms[platform].digest
        assert ("team/buildx", target, attestation.digest, "buildx-index") in links
    assert shelf.oras.referrer is not None
    oras_subject = shelf.oras.referrer.json["subject"]["digest"]
    # oras pushed its subject into another repository: linked, but the subject is not found there
    row = result.referrers[result.referrers["referrer_digest"] == shelf.oras.referrer.digest].iloc[0]
    assert row["subject_digest"] == oras_subject and row["referrer_source"] == "subject"
    assert not row["subject_found"]
    assert result.referrers[result.referrers["repository"] == "team/app"]["subject_found"].all()


def test_kinds_artifact_types_and_dates(shelf: Shelf) -> None:
    result = shelf.crawl()
    tags = result.tags.set_index(["repository", "tag"])
    sig, att, sbom = (p.tags[0] for p in shelf.cosign.all)
    assert [tags.loc[("team/app", t), "kind"] for t in (sig, att, sbom)] == [
        "signature",
        "attestation",
        "sbom",
    ]
    schema_tag = shelf.referrers.index.tags[0]
    assert tags.loc[("team/app", schema_tag), "kind"] == "referrers-index"
    assert tags.loc[("team/app", schema_tag), "subject_digest"] == shelf.kept.digest
    images = result.images
    listed = images[images["tag"] == schema_tag].set_index("manifest_digest")
    assert listed.loc[shelf.referrers.sbom.digest, "kind"] == "sbom"
    assert listed.loc[shelf.referrers.sbom.digest, "artifact_type"] == "application/spdx+json"
    assert listed.loc[shelf.referrers.notation.digest, "kind"] == "signature"
    assert (
        listed.loc[shelf.referrers.notation.digest, "config_media_type"]
        == "application/vnd.cncf.notary.signature"
    )
    chart = images[images["repository"] == "charts/mychart"].iloc[0]
    assert chart["kind"] == "helm-chart" and chart["created_source"] == "annotation"
    assert chart["created"] == pd.Timestamp(
        json.loads(shelf.helm.pushed.raw)["annotations"]["org.opencontainers.image.created"]
    )
    assert json.loads(chart["annotations"])["org.opencontainers.image.title"]
    # cosign's zero-time config is no date: NaT, flagged, never year 1
    signature = images[images["tag"] == sig].iloc[0]
    assert pd.isna(signature["created"]) and signature["created_suspect"]


def test_attestations_are_not_platforms(shelf: Shelf) -> None:
    result = shelf.crawl("team/buildx")
    tag = result.tags.iloc[0]
    assert tag["platforms"] == "linux/amd64,linux/arm64" and tag["n_images"] == 2
    platforms = {p.digest for p in shelf.buildx.platforms.values()}
    layers = result.layers[result.layers["manifest_digest"].astype(str).isin(platforms)]
    expected = layers.drop_duplicates("layer_digest")["layer_size"].sum()
    assert tag["size"] == expected
    kinds = result.images.set_index("manifest_digest")["kind"]
    assert {kinds[a.digest] for a in shelf.buildx.attestations.values()} == {"attestation"}


def test_storage_splits_bytes_by_kind(shelf: Shelf) -> None:
    result = shelf.crawl()
    usage = storage_usage(result, by="kind").set_index("kind")
    assert {"image", "signature", "attestation", "sbom", "helm-chart", "index"} <= set(usage.index)
    total = int(usage.loc["(registry total)", "stored_bytes"])
    assert total == sum(blob_store_bytes(shelf.server.storage).values())
    assert int(usage.loc["helm-chart", "stored_bytes"]) == sum(shelf.helm.pushed.stored().values())


def _verdicts(table: pd.DataFrame) -> dict[str, tuple[bool, str]]:
    return {
        str(d): (bool(c), str(r))
        for d, c, r in zip(table["digest"], table["candidate"], table["rule"], strict=True)
    }


POLICIES: dict[str, Callable[[Crawl], pd.DataFrame]] = {
    "stale": lambda r: stale(
        r.images, older_than="90D", keep_latest=0, now=NOW, keep_latest_tag=False, include_kept=True
    ).rename(columns={"reason": "rule"}),
    "gitlab": lambda r: GitLabPolicy(keep_n=0, older_than="90d", keep_latest_tag=False).evaluate(
        r.images, NOW
    ),
    "harbor": lambda r: HarborPolicy(
        [HarborRule(repositories="**", tags="**", action="nDaysSinceLastPush", n=90)]
    ).evaluate(r.images, NOW),
    "ecr": lambda r: EcrPolicy.from_json(
        {
            "rules": [
                {
                    "rulePriority": 1,
                    "selection": {
                        "tagStatus": "any",
                        "countType": "sinceImagePushed",
                        "countUnit": "days",
                        "countNumber": 90,
                    },
                    "action": {"type": "expire"},
                }
            ]
        }
    ).evaluate(r.images, NOW),
}


@pytest.mark.parametrize("policy", sorted(POLICIES))
def test_referrers_follow_their_subject_in_every_vocabulary(shelf: Shelf, policy: str) -> None:
    result = shelf.crawl("team/app")
    verdicts = _verdicts(POLICIES[policy](result))
    # v1 (2024) is old: its cosign signature, attestation and SBOM go with it, whatever their dates
    assert verdicts[shelf.old.digest][0]
    for pushed in shelf.cosign.all:
        assert verdicts[pushed.digest] == (True, "follows_subject"), policy
    # oci-multi is old too (2024-03): its tag-schema index of referrers follows it
    assert verdicts[shelf.referrers.index.digest] == (verdicts[shelf.kept.digest][0], "follows_subject")


def test_signature_of_a_kept_image_is_kept(shelf: Shelf) -> None:
    result = shelf.crawl("team/app")
    table = stale(result.images, older_than="90D", keep_latest=0, now=NOW, keep=r"v1", include_kept=True)
    verdicts = _verdicts(table.rename(columns={"reason": "rule"}))
    assert not verdicts[shelf.old.digest][0]  # kept: tagged latest, and v1 matches keep
    for pushed in shelf.cosign.all:
        assert verdicts[pushed.digest] == (False, "follows_subject")
    explain = table.set_index("digest").loc[shelf.cosign.signature.digest, "explain"]
    assert "stays with it" in explain


def test_plan_cascades_blocks_and_keeps(shelf: Shelf) -> None:
    result = shelf.crawl("team/app")
    plan = plan_delete(result, [("team/app", shelf.kept.digest)])
    cascade = plan[plan["referrer_of"].notna()]
    assert plan.iloc[0]["digest"] == shelf.kept.digest
    assert set(cascade["digest"]) == {
        shelf.referrers.index.digest,
        *(r.digest for r in shelf.referrers.referrers),
    }
    assert cascade[cascade["digest"] != shelf.referrers.index.digest]["untagged"].all()
    assert not plan["blocked"].any(), plan[["digest", "warnings"]]
    # each row's figure is for that row alone; the subject's own bytes are there
    assert plan.iloc[0]["reclaimable_bytes"] > 0
    kept = plan_delete(result, [("team/app", shelf.kept.digest)], referrers="keep")
    assert len(kept) == 1 and "become orphans" in " ".join(kept.iloc[0]["warnings"])
    blocked = plan_delete(result, [("team/app", shelf.kept.digest)], referrers="block")
    assert blocked.iloc[0]["blocked"]
    signature = plan_delete(result, [("team/app", shelf.cosign.signature.digest)])
    assert signature.iloc[0]["blocked"] and "which stays" in signature.iloc[0]["warnings"][0]
    allowed = plan_delete(result, [("team/app", shelf.cosign.signature.digest)], allow_referrer_delete=True)
    assert not allowed.iloc[0]["blocked"]


def test_orphans_and_gc_warnings_are_reported(tmp_path: Path) -> None:
    with LocalRegistry() as server:
        registry = Registry.build_with_manual_client(server.url)
        repo = registry.repository("left/behind")
        images = push_ordinary(repo).images
        cosign = push_cosign(repo, images["oci"])
        # another tool deletes the image and leaves the signatures behind
        repo.delete_manifest(images["oci"].digest)
        result = crawl(registry, progress=False)
        findings = integrity(result, registry=registry)
        orphans = findings[findings["finding"] == "orphaned-referrer"]
        assert set(orphans["digest"]) == {p.digest for p in cosign.all}
        assert set(orphans["subject_digest"]) == {images["oci"].digest}
        gc = findings[findings["finding"] == "gc-untagged-child"]
        children = {c.digest for c in images["multi"].content.children} | {
            c.digest for c in images["oci-multi"].content.children
        }
        assert set(gc["digest"]) == children
        # orphans are candidates in their own right, in retention and in a plan
        verdicts = _verdicts(GitLabPolicy(keep_n=10, older_than="3650d").evaluate(result.images, NOW))
        assert all(verdicts[p.digest] == (True, "orphan") for p in cosign.all)
        plan = plan_delete(result, orphans)
        assert not plan["blocked"].any()
        done = execute(registry, plan, dry_run=False, audit_log=tmp_path / "audit.csv")
        assert set(done["outcome"]) == {"deleted"}
        assert (
            integrity(crawl(registry, progress=False), registry=registry)
            .query("finding == 'orphaned-referrer'")
            .empty
        )


def test_cascade_delete_leaves_nothing_of_the_image(tmp_path: Path) -> None:
    with LocalRegistry() as server:
        registry = Registry.build_with_manual_client(server.url)
        repo = registry.repository("team/signed")
        images = push_ordinary(repo).images
        cosign = push_cosign(repo, images["oci-multi"])
        referrers = push_referrers(repo, images["oci-multi"])
        before = crawl(registry, progress=False)
        plan = plan_delete(before, [("team/signed", images["oci-multi"].digest)], registry=registry)
        freed = dict(zip(*_freed(before, plan), strict=True))
        done = execute(registry, plan, dry_run=False, audit_log=tmp_path / "audit.csv")
        assert set(done["outcome"]) == {"deleted"}, done[["digest", "outcome", "error"]]
        after = crawl(registry, progress=False)
        gone = {images["oci-multi"].digest, *(p.digest for p in cosign.all), referrers.index.digest}
        assert not gone & set(after.tags["digest"].astype(str))
        assert integrity(after, registry=registry).query("finding == 'orphaned-referrer'").empty
        for referrer in referrers.referrers:
            assert repo.check_manifest(referrer.digest) is None  # untagged ones deleted too
        gc = run_garbage_collect(server.config_path)
        try:
            # nothing of the image is left but what other images still use
            assert gc.freed == freed
        finally:
            gc.cleanup()


def _freed(before: Crawl, plan: pd.DataFrame) -> tuple[list[str], list[int]]:
    from dreg_frames import reclaimable

    pairs = list(zip(plan["repository"], plan["digest"], strict=True))
    out = reclaimable(before, pairs, delete_untagged=False)
    return list(out["blob"]), [int(s) for s in out["size"]]


def test_untag_keeps_the_other_tags(tmp_path: Path) -> None:
    with LocalRegistry() as server:
        registry = Registry.build_with_manual_client(server.url)
        repo = registry.repository("team/untag")
        images = push_ordinary(repo).images
        result = crawl(registry, progress=False)
        plan = plan_untag(result, [("team/untag", "v1")], registry=registry)
        assert plan.iloc[0]["action"] == "untag" and plan.iloc[0]["reclaimable_bytes"] == 0  # latest stays
        log = tmp_path / "audit.csv"
        done = execute(registry, plan, dry_run=False, audit_log=log)
        assert done.iloc[0]["outcome"] == "untagged", done.iloc[0]["error"]
        assert repo.check_manifest("v1") is None
        assert repo.check_manifest("latest") == images["v1"].digest
        assert set(repo.tags()) == {"latest", "oci", "multi", "oci-multi"}
        rows = list(csv.DictReader(log.open()))
        assert [r["action"] for r in rows] == ["untag", "untag"] and rows[-1]["outcome"] == "untagged"


def test_referrers_api_where_the_registry_has_one(shelf: Shelf) -> None:
    """Distribution 2.8 has no referrers API: a proxy answers with the spec's shapes (an image
    index of descriptors with artifactType, Link pagination, OCI-Filters-Applied), built from the
    real referrers, so the crawl finds an untagged referrer through the API alone."""
    subject = shelf.old.digest
    listed = [shelf.referrers.sbom, shelf.referrers.signature]  # real manifests, shown as referrers of v1

    def referrers_api(exchange: Exchange, forward: Callable[[], Reply]) -> Reply | None:
        if "/referrers/" not in exchange.path:
            return None
        if not exchange.path.startswith(f"/v2/team/app/referrers/{subject}"):
            return Reply(
                200,
                {"Content-Type": "application/vnd.oci.image.index.v1+json"},
                b'{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}',
            )
        page = 2 if "page=2" in exchange.path else 1
        item = listed[page - 1]
        body = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.index.v1+json",
                "manifests": [
                    item.descriptor(
                        artifactType=item.json.get("artifactType"),
                        annotations=item.json.get("annotations", {}),
                    )
                ],
            }
        ).encode()
        headers = {"Content-Type": "application/vnd.oci.image.index.v1+json"}
        if page == 1:
            headers["Link"] = f'</v2/team/app/referrers/{subject}?page=2>; rel="next"'
        return Reply(200, headers, body)

    with FaultProxy(shelf.server.port or 0) as proxy:
        proxy.rules.append(referrers_api)
        registry = Registry.build_with_manual_client(proxy.url)
        assert [d.digest for d in registry.repository("team/app").referrers(subject)] == [
            p.digest for p in listed
        ]
        filtered = registry.repository("team/app").referrers(subject, "application/spdx+json")
        assert [d.digest for d in filtered or []] == [shelf.referrers.sbom.digest]
        result = crawl(registry, ["team/app"], progress=False)
    assert result.meta["referrers_api"] is True
    api = result.referrers[result.referrers["subject_digest"] == subject]
    found = dict(zip(api["referrer_digest"].astype(str), api["referrer_source"].astype(str), strict=True))
    assert {found[p.digest] for p in listed} == {"referrers-api"}
    assert dict(zip(api["referrer_digest"], api["kind"], strict=True))[shelf.referrers.sbom.digest] == "sbom"
    # without the API (Distribution 2.8 itself): one probe, then the tag schema and cosign tags
    direct = shelf.crawl("team/app")
    assert direct.meta["referrers_api"] is False


def test_signed_and_unsigned_images(shelf: Shelf) -> None:
    result = shelf.crawl("team/app")
    table = signed(result).set_index("digest")
    assert table.loc[shelf.old.digest, "signed"]  # cosign .sig
    assert table.loc[shelf.old.digest, "attestations"] == 1 and table.loc[shelf.old.digest, "sboms"] == 1
    assert table.loc[shelf.kept.digest, "signed"]  # Notation, through the tag schema
    unsigned = set(table.index[~table["signed"]])
    assert unsigned == {
        d for d in result.tags["digest"].astype(str) if d not in (shelf.old.digest, shelf.kept.digest)
    } & set(table.index)
    # signatures themselves are not listed as images to sign
    assert not {p.digest for p in shelf.cosign.all} & set(table.index)


def test_cli_untag_and_cascading_delete(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from dreg_frames.cli import main

    with LocalRegistry() as server:
        registry = Registry.build_with_manual_client(server.url)
        repo = registry.repository("cli/app")
        images = push_ordinary(repo).images
        cosign = push_cosign(repo, images["oci"])
        log = str(tmp_path / "audit.csv")
        assert main(["untag", server.url, "cli/app:v1", "--yes", "--audit-log", log]) == 0
        assert repo.check_manifest("v1") is None and repo.check_manifest("latest") == images["v1"].digest
        assert main(["delete", server.url, f"cli/app@{images['oci'].digest}", "--audit-log", log]) == 0
        out = capsys.readouterr().out
        assert out.count("belongs to") == 3 and "pass --yes" in out
        assert (
            main(["delete", server.url, f"cli/app@{images['oci'].digest}", "--yes", "--audit-log", log]) == 0
        )
        assert all(repo.check_manifest(p.digest) is None for p in (images["oci"], *cosign.all))
