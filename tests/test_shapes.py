"""The test-content library (tests/shapes.py, tests/graphs.py) against a real Distribution 2.8.2.

Every shape is pushed, read back raw by skopeo (a client nobody here wrote) and by our client,
and checked byte for byte (digest = sha256 of the bytes) and against the spec fields it claims.
"""

from __future__ import annotations

import base64
import io
import json
import tarfile
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dreg_frames import (
    LocalRegistry,
    Registry,
    RegistryError,
    Repository,
    make_layer,
    push_image,
    sha256_digest,
)

from . import shapes
from .conftest import unique_name
from .graphs import GraphSpec, ImageSpec, IndexSpec, TagSpec, build_graph, graph_specs, push_graph, wide_spec
from .shapes import (
    COSIGN_SIGNATURE_ANNOTATION,
    COSIGN_SIMPLESIGNING,
    CREATED_ANNOTATION,
    DOCKER_FOREIGN,
    DOCKER_REFERENCE_DIGEST,
    DOCKER_REFERENCE_TYPE,
    DSSE_ENVELOPE,
    EMPTY_DESCRIPTOR,
    EMPTY_DIGEST,
    HELM_CHART,
    HELM_CONFIG,
    IN_TOTO,
    IN_TOTO_PREDICATE_ANNOTATION,
    NOTARY_SIGNATURE,
    NOTARY_THUMBPRINT,
    OCI_EMPTY,
    OCI_INDEX,
    OCI_MANIFEST,
    OCI_NONDISTRIBUTABLE,
    SPDX_JSON,
    Content,
    Pushed,
    blob_store_bytes,
    run_garbage_collect,
    skopeo_raw,
    tag_for_digest,
    utc_text,
)

urls_registry_server = shapes.urls_registry_server


def _host(server: LocalRegistry) -> str:
    return f"127.0.0.1:{server.port}"


def _repo(registry: Registry, hint: str) -> Repository:
    return registry.repository(unique_name(hint))


def check_stored(server: LocalRegistry, repo: Repository, pushed: Pushed) -> None:
    """What the registry serves is exactly what we built: every tag through skopeo and our client,
    every manifest below by digest, every stored blob with its size, no foreign layer stored."""
    for tag in pushed.tags:
        assert skopeo_raw(_host(server), repo.name, tag) == pushed.raw, tag
        body, _, digest = repo.get_manifest_bytes(tag)
        assert body == pushed.raw and digest == sha256_digest(pushed.raw) == pushed.digest
    if not pushed.tags:
        assert skopeo_raw(_host(server), repo.name, pushed.digest) == pushed.raw
    for content in pushed.content.walk():
        body, content_type, digest = repo.get_manifest_bytes(content.digest)
        assert body == content.raw and digest == content.digest
        assert content_type.split(";")[0] == content.media_type
        for blob, size in content.blob_sizes.items():
            assert repo.check_blob(blob) == size, blob
        for blob in content.foreign:
            assert repo.check_blob(blob) is None, f"foreign layer {blob} should not be stored"


# -- 1. ordinary images -------------------------------------------------------------------------------
def test_ordinary_images_and_a_base_shared_across_repositories(
    registry_server: LocalRegistry, registry: Registry
) -> None:
    repo = _repo(registry, "ordinary")
    ordinary = shapes.push_ordinary(repo)
    assert ordinary.images["v1"].digest == ordinary.images["latest"].digest
    assert {p.media_type for p in ordinary.images.values()} == {
        shapes.DOCKER_MANIFEST,
        OCI_MANIFEST,
        shapes.DOCKER_LIST,
        OCI_INDEX,
    }
    for pushed in ordinary.images.values():
        check_stored(registry_server, repo, pushed)
        for content in pushed.content.walk():
            if content.media_type in (shapes.DOCKER_MANIFEST, OCI_MANIFEST):
                assert content.json["layers"][0]["digest"] == ordinary.base_layer[0]
    assert sorted(repo.tags()) == sorted(ordinary.images)

    repos = [_repo(registry, f"shared-{i}") for i in range(3)]
    shared = shapes.push_shared_base(repos)
    assert shared.mounted == {r.name: True for r in repos[1:]}
    base_digest, base_size = shared.base_layer
    for r in repos:
        check_stored(registry_server, r, shared.images[r.name])
        assert r.check_blob(base_digest) == base_size
    tops = {shared.images[r.name].json["layers"][1]["digest"] for r in repos}
    assert len(tops) == 3  # only the base is shared


# -- 2. cosign ---------------------------------------------------------------------------------------
def test_cosign_signature_attestation_and_sbom(registry_server: LocalRegistry, registry: Registry) -> None:
    repo = _repo(registry, "cosign")
    image = shapes.push_ordinary(repo).images["v1"]
    cosign = shapes.push_cosign(repo, image, signatures=2)
    hex_digest = image.digest.split(":", 1)[1]
    assert cosign.signature.tags == (f"sha256-{hex_digest}.sig",)
    assert cosign.attestation.tags == (f"sha256-{hex_digest}.att",)
    assert cosign.sbom.tags == (f"sha256-{hex_digest}.sbom",)
    for pushed in cosign.all:
        check_stored(registry_server, repo, pushed)
        body = pushed.json
        config = json.loads(repo.blob_bytes(body["config"]["digest"]))
        # the zero-time shape cosign writes
        assert config["created"] == "0001-01-01T00:00:00Z"
        assert config["os"] == config["architecture"] == ""
        assert config["rootfs"]["diff_ids"] == [layer["digest"] for layer in body["layers"]]

    signature = cosign.signature.json
    assert [layer["mediaType"] for layer in signature["layers"]] == [COSIGN_SIMPLESIGNING] * 2
    for layer in signature["layers"]:
        assert base64.b64decode(layer["annotations"][COSIGN_SIGNATURE_ANNOTATION], validate=True)
        payload = json.loads(repo.blob_bytes(layer["digest"]))
        assert payload["critical"]["image"]["docker-manifest-digest"] == image.digest
        assert payload["critical"]["type"] == "cosign container image signature"

    (att_layer,) = cosign.attestation.json["layers"]
    assert att_layer["mediaType"] == DSSE_ENVELOPE
    envelope = json.loads(repo.blob_bytes(att_layer["digest"]))
    statement = json.loads(base64.b64decode(envelope["payload"]))
    assert envelope["payloadType"] == IN_TOTO
    assert statement["predicateType"] == att_layer["annotations"]["predicateType"]
    assert statement["subject"][0]["digest"] == {"sha256": hex_digest}

    (sbom_layer,) = cosign.sbom.json["layers"]
    assert sbom_layer["mediaType"] == SPDX_JSON
    assert json.loads(repo.blob_bytes(sbom_layer["digest"]))["spdxVersion"] == "SPDX-2.3"
    assert set(repo.tags()) >= {*cosign.signature.tags, *cosign.attestation.tags, *cosign.sbom.tags}


# -- 3. and 6. OCI 1.1 artifacts, Notation, the referrers tag schema -----------------------------------
def test_oci11_referrers_notation_and_the_referrers_tag(
    registry_server: LocalRegistry, registry: Registry
) -> None:
    repo = _repo(registry, "referrers")
    image = shapes.push_ordinary(repo).images["oci"]
    refs = shapes.push_referrers(repo, image)
    subject = {"mediaType": image.media_type, "digest": image.digest, "size": image.size}

    for pushed in refs.referrers:
        check_stored(registry_server, repo, pushed)
        assert pushed.json["subject"] == subject
    assert repo.blob_bytes(EMPTY_DIGEST) == b"{}" and sha256_digest(b"{}") == EMPTY_DIGEST

    sbom, signature, empty = refs.sbom.json, refs.signature.json, refs.empty_layer.json
    for body in (sbom, signature, empty):
        assert body["config"] == EMPTY_DESCRIPTOR
        assert body["mediaType"] == OCI_MANIFEST
    assert sbom["artifactType"] == "application/spdx+json" and len(sbom["layers"]) == 1
    assert signature["layers"] == []
    assert empty["layers"] == [EMPTY_DESCRIPTOR]

    notation = refs.notation.json
    assert "artifactType" not in notation  # Notation 1.x: the type is the config media type
    assert notation["config"] == {"mediaType": NOTARY_SIGNATURE, "digest": EMPTY_DIGEST, "size": 2}
    assert notation["layers"][0]["mediaType"] == shapes.JOSE
    assert len(json.loads(notation["annotations"][NOTARY_THUMBPRINT])) == 2
    assert CREATED_ANNOTATION in notation["annotations"]

    # The referrers tag: an index at sha256-<hex> listing each referrer with its artifactType,
    # recomputed here from the bytes skopeo reads.
    index = refs.index
    assert index.tags == (f"sha256-{image.digest.split(':', 1)[1]}",)
    check_stored(registry_server, repo, index)
    listed = index.json["manifests"]
    assert [entry["digest"] for entry in listed] == [r.digest for r in refs.referrers]
    for entry, referrer in zip(listed, refs.referrers, strict=True):
        raw = skopeo_raw(_host(registry_server), repo.name, referrer.digest)
        body = json.loads(raw)
        assert entry["size"] == len(raw)
        assert entry["artifactType"] == body.get("artifactType", body["config"]["mediaType"])
        assert entry.get("annotations") == body.get("annotations")
        assert "platform" not in entry

    # Distribution 2.8.2 has no referrers API: clients must use the tag above.
    answer = requests.get(f"{registry_server.url}{repo.name}/referrers/{image.digest}", timeout=10)
    assert answer.status_code == 404

    later = shapes.push_notation_signature(repo, image, artifact_type_field=True, envelope="cose")
    check_stored(registry_server, repo, later)
    assert later.json["artifactType"] == NOTARY_SIGNATURE
    assert later.json["config"] == EMPTY_DESCRIPTOR
    assert later.json["layers"][0]["mediaType"] == shapes.COSE


# -- 4. buildx ----------------------------------------------------------------------------------------
def test_buildx_index_with_attestation_manifests(registry_server: LocalRegistry, registry: Registry) -> None:
    repo = _repo(registry, "buildx")
    built = shapes.push_buildx(repo, "v1", ("linux/amd64", "linux/arm64"))
    check_stored(registry_server, repo, built.index)
    entries = built.index.json["manifests"]
    images = [e for e in entries if e["platform"]["os"] != "unknown"]
    attestations = [e for e in entries if e["platform"] == {"architecture": "unknown", "os": "unknown"}]
    assert [e["digest"] for e in images] == [c.digest for c in built.platforms.values()]
    assert entries == images + attestations  # attestations come after every runnable manifest
    assert {e["annotations"][DOCKER_REFERENCE_DIGEST] for e in attestations} == {e["digest"] for e in images}
    assert {e["annotations"][DOCKER_REFERENCE_TYPE] for e in attestations} == {"attestation-manifest"}
    for entry in attestations:
        body = json.loads(repo.get_manifest_bytes(entry["digest"])[0])
        config = json.loads(repo.blob_bytes(body["config"]["digest"]))
        assert (config["os"], config["architecture"]) == ("unknown", "unknown")
        for layer in body["layers"]:
            assert layer["mediaType"] == IN_TOTO
            statement = json.loads(repo.blob_bytes(layer["digest"]))
            assert statement["predicateType"] == layer["annotations"][IN_TOTO_PREDICATE_ANNOTATION]
            assert (
                "sha256:" + statement["subject"][0]["digest"]["sha256"]
                == entry["annotations"][DOCKER_REFERENCE_DIGEST]
            )


# -- 5. Helm ------------------------------------------------------------------------------------------
def test_helm_chart(registry_server: LocalRegistry, registry: Registry) -> None:
    repo = _repo(registry, "charts-mychart")
    chart = shapes.push_helm_chart(repo, "mychart", "0.1.0")
    old = shapes.push_helm_chart(repo, "mychart", "0.2.0", media_type_field=False, provenance=True)
    for pushed in (chart.pushed, old.pushed):
        check_stored(registry_server, repo, pushed)
        body = pushed.json
        config = json.loads(repo.blob_bytes(body["config"]["digest"]))
        assert body["config"]["mediaType"] == HELM_CONFIG
        assert not {"created", "os", "architecture"} & set(config)
        assert config["version"] == pushed.tags[0] and config["apiVersion"] == "v2"
        assert body["annotations"][CREATED_ANNOTATION] == shapes.FIXED_CREATED
        layer = body["layers"][0]
        assert layer["mediaType"] == HELM_CHART
        with tarfile.open(fileobj=io.BytesIO(repo.blob_bytes(layer["digest"])), mode="r:gz") as tar:
            chart_yaml = tar.extractfile("mychart/Chart.yaml")
            assert chart_yaml is not None
            assert f"version: {config['version']}" in chart_yaml.read().decode()
    assert "mediaType" not in old.pushed.json and len(old.pushed.json["layers"]) == 2
    # Without the field, the registry serves the type it was pushed with.
    assert repo.get_manifest_bytes("0.2.0")[1].split(";")[0] == OCI_MANIFEST


# -- 7. Windows foreign layers ---------------------------------------------------------------------------
def test_windows_foreign_layers(urls_registry_server: LocalRegistry, registry_server: LocalRegistry) -> None:
    registry = Registry.build_with_manual_client(urls_registry_server.url)
    repo = _repo(registry, "windows")
    windows = shapes.push_windows(repo)
    for pushed in windows.images.values():
        check_stored(urls_registry_server, repo, pushed)
    for release in ("ltsc2019", "ltsc2022"):
        body = windows.images[release].json
        base = body["layers"][0]
        assert base["mediaType"] == DOCKER_FOREIGN and base["urls"][0].startswith("https://")
        assert base["digest"] in windows.images[release].foreign
    listing = windows.images["multi"].json["manifests"]
    for entry, release in zip(listing, ("ltsc2019", "ltsc2022"), strict=True):
        child = json.loads(repo.get_manifest_bytes(entry["digest"])[0])
        config = json.loads(repo.blob_bytes(child["config"]["digest"]))
        assert entry["platform"]["os.version"] == config["os.version"] == shapes.WINDOWS_VERSIONS[release]
    assert listing[0]["platform"]["os.version"].startswith("10.0.17763.")
    assert listing[1]["platform"]["os.version"].startswith("10.0.20348.")
    nondist = windows.images["nondist"].json
    assert nondist["layers"][0]["mediaType"] == OCI_NONDISTRIBUTABLE

    # The default registry refuses them: that is why URLS_ALLOWED exists.
    plain = _repo(Registry.build_with_manual_client(registry_server.url), "windows-refused")
    with pytest.raises(RegistryError):
        shapes.push_content(plain, shapes.windows_image("ltsc2019"), ["x"])


# -- 8., 9., 10. nested index, odd dates, zero layers ------------------------------------------------------
def test_nested_index_odd_dates_and_zero_layers(registry_server: LocalRegistry, registry: Registry) -> None:
    repo = _repo(registry, "odd")
    nested = shapes.push_nested_index(repo)
    check_stored(registry_server, repo, nested.outer)
    first = nested.outer.json["manifests"][0]
    assert first["mediaType"] == OCI_INDEX and first["digest"] == nested.inner.digest
    assert [m["mediaType"] for m in nested.inner.json["manifests"]] == [OCI_MANIFEST] * 2
    assert nested.inner.digest not in {repo.check_manifest(t) for t in repo.tags()}  # untagged inner

    dates = shapes.push_odd_dates(repo)
    assert set(dates) == set(shapes.ODD_DATES)
    for label, odd in dates.items():
        check_stored(registry_server, repo, odd.pushed)
        config = json.loads(repo.blob_bytes(odd.pushed.json["config"]["digest"]))
        if odd.created_raw is None:
            assert "created" not in config, label
        else:
            assert config["created"] == odd.created_raw, label
    assert dates["annotation-only"].pushed.json["annotations"] == {CREATED_ANNOTATION: "2024-05-01T12:00:00Z"}
    assert dates["offset"].utc == "2024-05-01T06:30:00Z"
    assert dates["lowercase"].utc == "2024-05-01T12:00:00Z"
    assert dates["nanos"].utc == "2024-05-01T12:00:00.123456789Z"
    assert dates["y9999"].utc == "9999-12-31T23:59:59Z" and dates["empty"].utc is None
    assert utc_text("2024-01-01T01:00:00-02:00") == "2024-01-01T03:00:00Z"
    assert dates["year1-offset"].utc == "0000-12-31T23:00:00Z"
    assert dates["y9999-offset"].utc == "10000-01-01T00:59:59Z"

    zero = shapes.push_zero_layers(repo)
    for pushed in zero.values():
        check_stored(registry_server, repo, pushed)
        assert pushed.json["layers"] == []
        config = json.loads(repo.blob_bytes(pushed.json["config"]["digest"]))
        assert config["rootfs"]["diff_ids"] == [] and config["os"] == "linux"
        assert "artifactType" not in pushed.json


@settings(max_examples=200, deadline=None)
@given(
    when=st.datetimes(
        min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.just(timezone.utc)
    ),
    minutes=st.integers(-14 * 60, 14 * 60),
)
def test_utc_text_agrees_with_datetime_where_datetime_can_say(when: datetime, minutes: int) -> None:
    local = (when + timedelta(minutes=minutes)).replace(tzinfo=None, microsecond=0)
    sign = "+" if minutes >= 0 else "-"
    raw = f"{local.isoformat()}{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"
    expected = when.replace(microsecond=0)
    assert utc_text(raw) == f"{expected.isoformat().replace('+00:00', '')}Z"


# -- 11. skopeo and oras ---------------------------------------------------------------------------------
def test_skopeo_copy_from_an_oci_layout(
    registry_server: LocalRegistry, registry: Registry, tmp_path: Path
) -> None:
    repo = _repo(registry, "skopeo-layout")
    copied = shapes.push_with_skopeo(repo, tmp_path)
    layout_index = json.loads((copied.layout / "index.json").read_text())
    assert json.loads((copied.layout / "oci-layout").read_text()) == {"imageLayoutVersion": "1.0.0"}
    assert {m["annotations"]["org.opencontainers.image.ref.name"] for m in layout_index["manifests"]} == {
        "single",
        "multi",
    }
    # skopeo copied the bytes as they were: the registry holds the layout's digests
    for pushed in (copied.image, copied.index):
        check_stored(registry_server, repo, pushed)


def test_oras_push_with_file_and_subject(
    registry_server: LocalRegistry, registry: Registry, tmp_path: Path
) -> None:
    image_repo = _repo(registry, "oras")
    image = shapes.push_ordinary(image_repo).images["oci"]
    pushed = shapes.push_with_oras(image_repo, tmp_path, subject=image)
    check_stored(registry_server, image_repo, pushed.artifact)
    body = pushed.artifact.json
    assert body["mediaType"] == OCI_MANIFEST
    assert body["config"]["mediaType"] == "application/vnd.example.oras.config.v1+json"
    (layer,) = body["layers"]
    assert layer["annotations"] == {shapes.TITLE_ANNOTATION: "notes.txt"}
    assert image_repo.blob_bytes(layer["digest"]) == pushed.file_bytes
    assert body["annotations"][CREATED_ANNOTATION] == shapes.FIXED_CREATED
    assert pushed.referrer is not None
    check_stored(registry_server, image_repo, pushed.referrer)
    referrer = pushed.referrer.json
    assert referrer["subject"] == {"mediaType": image.media_type, "digest": image.digest, "size": image.size}
    # oras-py 0.2 writes no artifactType and the pre-1.1 "unknown" config type, and leaves the
    # referrers tag alone: a crawler finds this referrer only through its subject field.
    assert referrer["config"]["mediaType"] == "application/vnd.unknown.config.v1+json"
    assert referrer["config"]["digest"] == EMPTY_DIGEST
    assert image_repo.check_manifest(tag_for_digest(image.digest)) is None


# -- 12. graphs ------------------------------------------------------------------------------------------
@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=graph_specs())
def test_a_pushed_graph_is_exactly_what_the_registry_stores(spec: GraphSpec) -> None:
    graph = build_graph(spec)
    with LocalRegistry() as server:
        registry = Registry.build_with_manual_client(server.url)
        answered = push_graph(graph, registry)
        assert answered == {key: content.digest for key, content in graph.tags.items()}
        assert blob_store_bytes(server.storage) == graph.stored_blobs()
        for row in graph.tag_records():
            assert registry.repository(row["repository"]).check_manifest(row["tag"]) == row["digest"]


def test_wide_graphs_have_exactly_n_distinct_names() -> None:
    # in memory only: names enough to cross pandas' int8 category codes
    for kind in ("tags", "repositories", "digests", "layers"):
        graph = build_graph(wide_spec(128, kind))
        rows = graph.image_records()
        assert len(rows) == 128
        distinct = {
            "tags": {r["tag"] for r in rows},
            "repositories": {r["repository"] for r in rows},
            "digests": {r["manifest_digest"] for r in rows},
            "layers": {layer["layer_digest"] for layer in graph.layer_records()},
        }[kind]
        assert len(distinct) == 128, kind


@settings(max_examples=25, deadline=None)
@given(spec=graph_specs(windows=True))
def test_graph_records_agree_with_the_manifests(spec: GraphSpec) -> None:
    graph = build_graph(spec)
    images, layers = graph.image_records(), graph.layer_records()
    assert len(layers) == sum(r["n_layers"] for r in images)
    assert sum(r["layer_bytes"] for r in images) == sum(r["layer_size"] for r in layers)
    assert {(r["repository"], r["tag"]) for r in images} == set(graph.tags)
    stored = graph.stored_blobs()
    for row in layers:
        assert (row["layer_digest"] in stored) != row["foreign"]
        if not row["foreign"]:
            assert stored[row["layer_digest"]] == row["layer_size"]


def test_windows_graph_pushes_into_a_urls_registry(urls_registry_server: LocalRegistry) -> None:
    spec = GraphSpec(
        (100, 200),
        (
            TagSpec("wingraph/a", "2019", ImageSpec((0,), windows="ltsc2019")),
            TagSpec(
                "wingraph/a",
                "multi",
                IndexSpec(
                    (ImageSpec((0, 1), windows="ltsc2019"), ImageSpec((1,), windows="ltsc2022")), oci=False
                ),
            ),
            TagSpec("wingraph/b", "oci", ImageSpec((0,), windows="ltsc2022", oci=True)),
        ),
    )
    graph = build_graph(spec)
    assert graph.needs_urls
    registry = Registry.build_with_manual_client(urls_registry_server.url)
    push_graph(graph, registry)
    on_disk = blob_store_bytes(urls_registry_server.storage)
    assert graph.stored_blobs().items() <= on_disk.items()
    assert not set(c for top in graph.contents() for item in top.walk() for c in item.foreign) & set(on_disk)


# -- storage oracles -----------------------------------------------------------------------------------------
def test_garbage_collect_on_a_copy_frees_what_was_only_the_deleted_images() -> None:
    with LocalRegistry() as server:
        registry = Registry.build_with_manual_client(server.url)
        repo = registry.repository("gc/app")
        base = make_layer({"base": b"b" * 2000})
        keep = push_image(repo, [base, make_layer({"k": b"keep"})], ["keep"])
        gone = push_image(repo, [base, make_layer({"g": b"gone"})], ["gone"])
        live = blob_store_bytes(server.storage)
        assert live[gone.digest] == len(gone.raw) and live[keep.config.digest] == keep.config.size
        repo.delete_manifest(gone.digest)
        only_gone = {gone.digest, gone.config.digest, gone.layers[1].digest}

        dry = run_garbage_collect(server.config_path, dry_run=True)
        try:
            assert dry.eligible == only_gone and dry.freed == {}
        finally:
            dry.cleanup()
        real = run_garbage_collect(server.config_path)
        try:
            assert set(real.freed) == only_gone == real.eligible
            assert sum(real.freed.values()) == len(gone.raw) + gone.config.size + gone.layers[1].size
        finally:
            real.cleanup()
        assert blob_store_bytes(server.storage) == live  # the live registry was not touched
        assert repo.check_manifest("keep") == keep.digest


def test_content_digest_is_the_hash_of_its_bytes() -> None:
    content = shapes.artifact_content(None, "application/x.test")
    assert isinstance(content, Content)
    assert content.digest == sha256_digest(content.raw) and content.size == len(content.raw)
    assert content.json["config"] == EMPTY_DESCRIPTOR and content.json["artifactType"] == "application/x.test"
    assert content.json["config"]["mediaType"] == OCI_EMPTY
    assert base64.b64decode(EMPTY_DESCRIPTOR["data"]) == b"{}"
