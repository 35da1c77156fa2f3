"""Supply-chain artifacts and their images: which digest belongs to which, what follows what.

A signature, attestation or SBOM (and a referrers tag-schema index) is about another manifest, its
*subject*. Retention treats them as part of their subject: never a candidate on its own age while
the subject stays, a candidate with it when it goes. :func:`integrity` reports what other tools
left behind: referrers whose subject is gone, indexes with missing children, manifests whose blobs
are missing, and the index children Distribution 2.8's ``garbage-collect --delete-untagged`` would
remove although their index is still tagged.

Example::

    referrers_of(result.layers)       # (repository, subject) -> referrer digests
    integrity(result)                 # a frame of findings, orphans first
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np
import pandas as pd

from ..client.artifacts import cosign_subject, tag_schema_subject
from ._frames import as_frame

__all__ = ["FINDING_COLUMNS", "integrity", "referrers_of", "signed", "subjects", "tag_level_subjects"]

FINDING_COLUMNS = ["finding", "severity", "repository", "digest", "tags", "subject_digest", "detail"]


def tag_level_subjects(frame: pd.DataFrame) -> dict[tuple[str, str], str]:
    """(repository, tagged digest) -> subject digest, for digests that are about another manifest:
    cosign tags, referrers tag-schema indexes, and tagged OCI artifacts with a ``subject``."""
    out: dict[tuple[str, str], str] = {}
    repos = frame["repository"].astype(str).to_numpy()
    tags = frame["tag"].astype(str).to_numpy()
    digests = frame["digest"].astype(str).to_numpy()
    own = _own_subjects(frame)
    for repository, tag, digest, subject in zip(repos, tags, digests, own, strict=True):
        key = (repository, digest)
        if key in out:
            continue
        cosign = cosign_subject(tag)
        named = cosign[0] if cosign else tag_schema_subject(tag)
        if named is not None:
            out[key] = named
        elif subject is not None:
            out[key] = subject
    return out


def _own_subjects(frame: pd.DataFrame) -> list[str | None]:
    """The subject of the manifest a row's tag names itself (not of an index's children)."""
    if "subject_digest" not in frame:
        return [None] * len(frame)
    subject = frame["subject_digest"].astype(object)
    if "manifest_digest" in frame:
        subject = subject.where(frame["manifest_digest"].astype(str) == frame["digest"].astype(str))
    return [None if pd.isna(s) else str(s) for s in subject]


def subjects(frame: Any) -> pd.DataFrame:
    """One row per referrer link in a crawl frame: repository, subject_digest, referrer_digest
    (the manifest that is about the subject) and digest (the tagged digest it is reached through)."""
    source = as_frame(frame, ["repository", "tag", "digest"], "subjects", ("layers", "images", "tags"))
    rows: list[tuple[str, str, str, str]] = []
    for (repository, digest), subject in tag_level_subjects(source).items():
        rows.append((repository, subject, digest, digest))
    if {"subject_digest", "manifest_digest"} <= set(source.columns):
        linked = source[source["subject_digest"].notna()]
        for repository, subject, manifest, digest in zip(
            linked["repository"].astype(str),
            linked["subject_digest"].astype(str),
            linked["manifest_digest"].astype(str),
            linked["digest"].astype(str),
            strict=True,
        ):
            rows.append((repository, subject, manifest, digest))
    out = pd.DataFrame(rows, columns=["repository", "subject_digest", "referrer_digest", "digest"])
    return out.drop_duplicates().reset_index(drop=True)


def referrers_of(frame: Any) -> dict[tuple[str, str], set[str]]:
    """(repository, subject digest) -> the *tagged* digests that belong to it (cosign tags, the
    tag-schema index, tagged artifacts): what goes when the subject goes."""
    source = as_frame(frame, ["repository", "tag", "digest"], "referrers_of", ("layers", "images", "tags"))
    out: dict[tuple[str, str], set[str]] = defaultdict(set)
    for (repository, digest), subject in tag_level_subjects(source).items():
        out[(repository, subject)].add(digest)
    return dict(out)


def _members(source: pd.DataFrame) -> dict[tuple[str, str], set[str]]:
    """(repository, tagged digest) -> every manifest digest under it, itself included."""
    out: dict[tuple[str, str], set[str]] = defaultdict(set)
    manifests = source["manifest_digest"] if "manifest_digest" in source else source["digest"]
    for repository, digest, manifest in zip(
        source["repository"].astype(str), source["digest"].astype(str), manifests.astype(str), strict=True
    ):
        out[(repository, digest)].update((digest, manifest))
    return out


def follow_subjects(
    table: pd.DataFrame, source: pd.DataFrame, candidate: np.ndarray
) -> tuple[np.ndarray, list[tuple[int, str, str]]]:
    """Referrers follow their subject: for each table row (a tagged digest) that is about another
    manifest, its verdict becomes the subject's. Returns the new candidate column and, per changed
    or confirmed row, ``(row, rule, explain)``.

    A subject is found as a tagged digest of the same repository or as a manifest under one (a
    platform image of an index); it goes when every tagged digest holding it goes. A referrer
    whose subject is nowhere in the crawl is an orphan: a candidate in its own right.
    """
    links = tag_level_subjects(source)
    if not links:
        return candidate, []
    keys = list(zip(table["repository"].astype(str), table["digest"].astype(str), strict=True))
    row_of = {key: i for i, key in enumerate(keys)}
    holders: dict[tuple[str, str], list[int]] = defaultdict(list)
    for (repository, digest), manifests in _members(source).items():
        if (repository, digest) in row_of:
            for manifest in manifests:
                holders[(repository, manifest)].append(row_of[(repository, digest)])
    tags = dict(zip(keys, table["tags"], strict=True)) if "tags" in table else {}
    out = candidate.copy()
    final: dict[int, tuple[str, str]] = {}
    # A signature of an SBOM of an image follows the image: chains resolve in a few rounds.
    for _ in range(4):
        changed = False
        for (repository, digest), subject in links.items():
            i = row_of.get((repository, digest))
            if i is None:
                continue
            rows = [r for r in holders.get((repository, subject), []) if r != i]
            if not rows:
                verdict, rule = True, "orphan"
                text = f"its subject {subject[:19]}… is not in this repository's crawl: an orphan"
            else:
                verdict = bool(all(out[r] for r in rows))
                rule = "follows_subject"
                named = ", ".join(sorted({t for r in rows for t in tags.get(keys[r], ())})) or "untagged"
                action = "goes with" if verdict else "stays with"
                text = f"belongs to {subject[:19]}… (tags {named}) and {action} it"
            changed = changed or bool(out[i]) != verdict
            out[i] = verdict
            final[i] = (rule, text)
        if not changed:
            break
    return out, [(i, rule, text) for i, (rule, text) in sorted(final.items())]


def integrity(result: Any, *, registry: Any = None) -> pd.DataFrame:
    """Findings about a crawl, as a frame (``finding, severity, repository, digest, tags,
    subject_digest, detail``):

    - ``orphaned-referrer``: a signature / attestation / SBOM / tag-schema index whose subject is
      not in the repository (with ``registry``, checked by a HEAD: not just untagged);
    - ``missing-child``: an index that lists a manifest the registry does not have;
    - ``missing-blob``: a manifest whose config or layer is gone;
    - ``gc-untagged-child``: a platform manifest (or attestation) of a tagged index that has no tag
      of its own: Distribution 2.8's ``garbage-collect --delete-untagged`` deletes its config and
      layers although the index is still tagged, breaking the image. Run plain ``garbage-collect``.

    Orphans are cleanup candidates: ``plan_delete(result, integrity(result).query("finding ==
    'orphaned-referrer'"))``.
    """
    frames = result.frames if hasattr(result, "frames") else {"images": result}
    source = frames.get("images", frames.get("layers"))
    if source is None:
        raise TypeError("integrity takes a Crawl (or its images frame)")
    errors = frames.get("errors", pd.DataFrame(columns=["repository", "tag", "stage", "error", "digest"]))
    rows: list[dict[str, Any]] = []
    tags_of: dict[tuple[str, str], set[str]] = defaultdict(set)
    for repository, tag, digest in zip(
        source["repository"].astype(str), source["tag"].astype(str), source["digest"].astype(str), strict=True
    ):
        tags_of[(repository, digest)].add(tag)
    members = _members(source)
    present: set[tuple[str, str]] = {(r, m) for (r, _), ms in members.items() for m in ms}
    for (repository, digest), subject in sorted(tag_level_subjects(source).items()):
        if (repository, subject) in present:
            continue
        if registry is not None and registry.repository(repository).check_manifest(subject) is not None:
            continue  # untagged, but there
        rows.append(
            {
                "finding": "orphaned-referrer",
                "severity": "cleanup",
                "repository": repository,
                "digest": digest,
                "tags": tuple(sorted(tags_of[(repository, digest)])),
                "subject_digest": subject,
                "detail": f"about {subject}, which is "
                + ("not in the registry" if registry is not None else "not in the crawl"),
            }
        )
    for error in errors.to_dict("records"):
        stage, kind = str(error.get("stage")), str(error.get("error"))
        if stage == "child" and kind in ("ManifestNotFound", "NotFound"):
            finding, detail = "missing-child", "the index lists a manifest the registry does not have"
        elif stage == "config" and kind in ("BlobNotFound", "NotFound"):
            finding, detail = "missing-blob", "the manifest's config blob is gone"
        else:
            continue
        rows.append(
            {
                "finding": finding,
                "severity": "broken",
                "repository": str(error["repository"]),
                "digest": str(error.get("digest") or ""),
                "tags": (str(error["tag"]),) if not pd.isna(error.get("tag")) else (),
                "subject_digest": None,
                "detail": detail,
            }
        )
    if {"manifest_digest", "parent_digest"} <= set(source.columns):
        children = source[source["parent_digest"].notna()]
        seen: set[tuple[str, str]] = set()
        for repository, digest, manifest in zip(
            children["repository"].astype(str),
            children["digest"].astype(str),
            children["manifest_digest"].astype(str),
            strict=True,
        ):
            key = (repository, manifest)
            if key in seen or tags_of.get(key):
                continue
            seen.add(key)
            rows.append(
                {
                    "finding": "gc-untagged-child",
                    "severity": "warning",
                    "repository": repository,
                    "digest": manifest,
                    "tags": (),
                    "subject_digest": None,
                    "detail": f"listed by tagged index {digest[:19]}… (tags "
                    f"{', '.join(sorted(tags_of[(repository, digest)]))}) but untagged itself: "
                    "garbage-collect --delete-untagged on Distribution 2.8 deletes its content",
                }
            )
    order = {"orphaned-referrer": 0, "missing-child": 1, "missing-blob": 2, "gc-untagged-child": 3}
    out = pd.DataFrame(rows, columns=FINDING_COLUMNS)
    out["_order"] = out["finding"].map(order)
    return out.sort_values(["_order", "repository", "digest"]).drop(columns="_order").reset_index(drop=True)


def signed(result: Any) -> pd.DataFrame:
    """One row per tagged image or index: ``repository, digest, tags, signed`` (a cosign or
    Notation signature, or any referrer of kind ``signature``, names it or one of its platform
    images), and the number of ``signatures``, ``attestations`` and ``sboms`` that belong to it.

    Example::

        signed(result).query("not signed")     # what nobody signed
    """
    frames = result.frames if hasattr(result, "frames") else None
    images = frames["images"] if frames is not None else result
    links = frames["referrers"] if frames is not None and "referrers" in frames else None
    if links is None:
        raise TypeError("signed takes a Crawl: it reads the images and referrers frames")
    own = images[images["manifest_digest"].astype(str) == images["digest"].astype(str)]
    tops = images[images["kind"].astype(str).isin(["image", "index"]) | ~images["digest"].isin(own["digest"])]
    tops = tops[~tops["tag"].astype(str).map(lambda t: bool(cosign_subject(t) or tag_schema_subject(t)))]
    if "kind" in own:
        artifacts = own[~own["kind"].astype(str).isin(["image", "index"])]
        tops = tops[~tops["digest"].isin(artifacts["digest"])]
    counts: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for repository, subject, kind in zip(
        links["repository"].astype(str),
        links["subject_digest"].astype(str),
        links["kind"].astype(str),
        strict=True,
    ):
        counts[(repository, subject)][kind] += 1
    rows = []
    for (repository, digest), group in tops.groupby(["repository", "digest"], observed=True, sort=True):
        members = {str(digest), *group["manifest_digest"].astype(str)}
        total: dict[str, int] = defaultdict(int)
        for member in members:
            for kind, n in counts.get((str(repository), member), {}).items():
                total[kind] += n
        rows.append(
            {
                "repository": str(repository),
                "digest": str(digest),
                "tags": tuple(sorted(set(group["tag"].astype(str)))),
                "signed": total["signature"] > 0,
                "signatures": total["signature"],
                "attestations": total["attestation"],
                "sboms": total["sbom"],
            }
        )
    columns = ["repository", "digest", "tags", "signed", "signatures", "attestations", "sboms"]
    return pd.DataFrame(rows, columns=columns)
