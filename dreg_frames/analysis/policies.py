"""Retention policies in the vocabularies admins already know: GitLab, Harbor and ECR lifecycle.

Every policy evaluates a crawl frame into one row per (repository, digest) with ``candidate``
(deleting it is what the policy asks), ``rule`` and ``explain`` (which rule kept or selected it).
Rules match tags, but the registry deletes per digest: a digest is kept when **any** of its tags
is kept. Dates flagged ``created_suspect`` (the 1970 epoch of reproducible builds, the future,
missing) are never judged by age or count: such digests are kept and say why.

Example::

    GitLabPolicy(keep_n=5, older_than="30d", name_regex_keep="v.*").evaluate(result.images)
    EcrPolicy.from_json(open("lifecycle.json").read()).evaluate(result)
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from ._frames import TagRows, as_frame, digest_index, now_utc, to_timedelta

__all__ = [
    "EcrPolicy",
    "EcrRule",
    "GitLabPolicy",
    "HarborPolicy",
    "HarborRule",
    "RetentionPolicy",
    "doublestar",
]

RESULT_COLUMNS = [
    "repository",
    "digest",
    "tags",
    "created",
    "created_suspect",
    "candidate",
    "rule",
    "explain",
]
_NEEDED = ["repository", "tag", "digest", "created"]


class RetentionPolicy:
    """Base of the policies: ``evaluate(frame, now=None)`` -> one row per (repository, digest)."""

    def evaluate(self, frame: Any, now: datetime | str | pd.Timestamp | None = None) -> pd.DataFrame:
        source = as_frame(frame, _NEEDED, type(self).__name__, prefer=("images", "tags", "layers"))
        table, tags = digest_index(source)
        candidate, rule, explain = self._decide_all(table, tags, now_utc(now))
        table["candidate"] = candidate
        table["rule"] = rule
        table["explain"] = explain
        return table[RESULT_COLUMNS].sort_values(["repository", "created", "digest"]).reset_index(drop=True)

    def _decide_all(
        self, table: pd.DataFrame, tags: TagRows, now: pd.Timestamp
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        decisions = self._decide(table, now)
        return (
            np.array([d[0] for d in decisions], dtype=bool),
            np.array([d[1] for d in decisions], dtype=object),
            np.array([d[2] for d in decisions], dtype=object),
        )

    def _decide(self, table: pd.DataFrame, now: pd.Timestamp) -> list[tuple[bool, str, str]]:
        raise NotImplementedError


def _days(delta: pd.Timedelta) -> str:
    return f"{delta.total_seconds() / 86400:.0f} days"


def _anchored(pattern: str | None, what: str) -> re.Pattern[str] | None:
    if pattern is None:
        return None
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"{what}: invalid regular expression {pattern!r}: {exc}") from None


@dataclass(frozen=True)
class GitLabPolicy(RetentionPolicy):
    """GitLab's cleanup policy: ``keep_n``, ``older_than``, ``name_regex`` (delete), ``name_regex_keep``.

    As GitLab does: ``latest`` is kept; tags not matching ``name_regex`` are kept; tags matching
    ``name_regex_keep`` are kept; of the rest, the ``keep_n`` newest images per repository are kept,
    then those newer than ``older_than``; what remains is deleted. Regexes match the whole tag.
    """

    keep_n: int | None = 10
    older_than: str | pd.Timedelta | int | None = "90d"
    name_regex: str | None = ".*"
    name_regex_keep: str | None = None
    keep_latest_tag: bool = True

    def _decide_all(
        self, table: pd.DataFrame, tags: TagRows, now: pd.Timestamp
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        # Vectorised: rules are matched once per distinct tag name, then spread to digests by code.
        delete_re = _anchored(self.name_regex, "name_regex")
        keep_re = _anchored(self.name_regex_keep, "name_regex_keep")
        age = to_timedelta(self.older_than, "older_than")
        if self.keep_n is not None and self.keep_n < 0:
            raise ValueError(f"keep_n must be 0 or more, got {self.keep_n}")
        n = len(table)
        names = pd.Series(tags.names, dtype=object)

        def first_tag(on_names: pd.Series) -> pd.Series:
            hit = on_names.to_numpy(dtype=bool)[tags.code]
            found = pd.Series(tags.names[tags.code[hit]]).groupby(tags.row[hit]).first()
            return found.reindex(range(n))

        rule = np.full(n, "", dtype=object)
        explain = pd.Series("", index=range(n), dtype=object)
        decided = np.zeros(n, dtype=bool)

        def assign(mask: np.ndarray, code: str, text: pd.Series | str) -> None:
            todo = mask & ~decided
            rule[todo] = code
            explain[todo] = text[todo] if isinstance(text, pd.Series) else text
            decided[todo] = True

        if self.keep_latest_tag:
            assign(first_tag(names == "latest").notna().to_numpy(), "latest", "tag 'latest' is always kept")
        if keep_re is not None:
            hit = first_tag(names.map(lambda t: keep_re.fullmatch(t) is not None))
            assign(
                hit.notna().to_numpy(),
                "name_regex_keep",
                "tag '" + hit.astype(str) + f"' matches name_regex_keep {self.name_regex_keep!r}",
            )
        if delete_re is not None:
            miss = first_tag(names.map(lambda t: delete_re.fullmatch(t) is None))
            assign(
                miss.notna().to_numpy(),
                "name_regex",
                "tag '" + miss.astype(str) + f"' does not match name_regex {self.name_regex!r}",
            )
        suspect = table["created_suspect"].to_numpy(dtype=bool)
        if suspect.any():
            assign(suspect, "suspect_date", table["created"][suspect].map(_suspect_text).reindex(range(n)))

        remaining = ~decided
        created = table["created"]
        order = table.loc[remaining, ["repository", "created"]].sort_values(
            ["repository", "created"], ascending=[True, False], kind="stable"
        )
        rank = np.full(n, -1, dtype="int64")
        rank[order.index.to_numpy()] = order.groupby("repository", sort=False).cumcount().to_numpy()
        days = ((now - created).dt.total_seconds() / 86400).round().astype("Int64").astype(str)
        if self.keep_n is not None:
            ordinal = "(#" + pd.Series(rank + 1).astype(str) + ")"
            assign(
                remaining & (rank < self.keep_n),
                "keep_n",
                f"one of the {self.keep_n} newest images in " + table["repository"] + " " + ordinal,
            )
        if age is not None:
            young = (now - created < age).to_numpy(dtype=bool)
            assign(remaining & young, "older_than", "created " + days + f" days ago, within {_days(age)}")
        why = "created " + days + " days ago"
        if age is not None:
            why += f", older than {_days(age)}"
        if self.keep_n is not None:
            why += f", not among the {self.keep_n} newest"
        candidate = ~decided
        assign(candidate, "older_than" if age is not None else "keep_n", why + "; no tag is kept")
        return candidate, rule, explain.to_numpy(dtype=object)


class _Row(NamedTuple):
    repository: str
    tags: tuple[str, ...]
    created: pd.Timestamp
    suspect: bool


def _rows(table: pd.DataFrame) -> list[_Row]:
    """The digest table as typed rows, for the rule-by-rule policies."""
    return [
        _Row(str(r), tuple(t), c, bool(s))
        for r, t, c, s in zip(
            table["repository"].tolist(),
            table["tags"].tolist(),
            table["created"].tolist(),
            table["created_suspect"].tolist(),
            strict=True,
        )
    ]


def _suspect_text(created: Any) -> str:
    if pd.isna(created):
        return "no usable created date; not judged by age"
    return f"created date {created:%Y-%m-%d} is suspect (epoch or future); not judged by age"


_BRACES = re.compile(r"\{([^{}]*)\}")


def doublestar(pattern: str) -> re.Pattern[str]:
    """Harbor's doublestar glob: ``**`` spans '/', ``*`` and ``?`` do not, ``{a,b}`` alternates.

    >>> bool(doublestar("team/**").fullmatch("team/a/b")), bool(doublestar("team/*").fullmatch("team/a/b"))
    (True, False)
    """
    out, i = [], 0
    while i < len(pattern):
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        elif pattern[i] == "{" and (m := _BRACES.match(pattern, i)):
            out.append("(?:" + "|".join(re.escape(p) for p in m.group(1).split(",")) + ")")
            i = m.end()
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out))


@dataclass(frozen=True)
class HarborRule:
    """One Harbor retention rule: which repositories and tags, and what it retains.

    ``action`` is ``"latestPushedK"`` (retain the ``n`` most recently pushed), ``"nDaysSinceLastPush"``
    (retain those pushed within ``n`` days) or ``"always"``.
    """

    repositories: str = "**"
    repositories_exclude: bool = False
    tags: str = "**"
    tags_exclude: bool = False
    action: str = "latestPushedK"
    n: int = 10

    def __post_init__(self) -> None:
        if self.action not in ("latestPushedK", "nDaysSinceLastPush", "always"):
            raise ValueError(
                f"HarborRule action must be latestPushedK, nDaysSinceLastPush or always: {self.action!r}"
            )

    def covers(self, repository: str) -> bool:
        return bool(doublestar(self.repositories).fullmatch(repository)) != self.repositories_exclude

    def selects(self, tags: Iterable[str]) -> bool:
        pattern = doublestar(self.tags)
        hits = [bool(pattern.fullmatch(t)) != self.tags_exclude for t in tags]
        return any(hits)

    def describe(self) -> str:
        what = {
            "latestPushedK": f"retain the {self.n} most recently pushed",
            "nDaysSinceLastPush": f"retain those pushed within {self.n} days",
            "always": "retain always",
        }[self.action]
        repo = ("not " if self.repositories_exclude else "") + self.repositories
        tag = ("not " if self.tags_exclude else "") + self.tags
        return f"{what} (repositories {repo}, tags {tag})"


@dataclass(frozen=True)
class HarborPolicy(RetentionPolicy):
    """Harbor tag retention: an artifact is kept if **any** rule retains it; in a repository that some
    rule covers, what no rule retains is deleted; repositories no rule covers are left alone."""

    rules: Sequence[HarborRule] = field(default_factory=lambda: [HarborRule()])

    def _decide(self, table: pd.DataFrame, now: pd.Timestamp) -> list[tuple[bool, str, str]]:
        out: list[tuple[bool, str, str] | None] = [None] * len(table)
        rows = _rows(table)
        for i, row in enumerate(rows):
            if not any(rule.covers(row.repository) for rule in self.rules):
                out[i] = (False, "out_of_scope", "no rule covers this repository")
            elif row.suspect:
                out[i] = (False, "suspect_date", _suspect_text(row.created))
        for number, rule in enumerate(self.rules, 1):
            by_repo: dict[str, list[int]] = {}
            for i, row in enumerate(rows):
                if rule.covers(row.repository) and rule.selects(row.tags) and not row.suspect:
                    by_repo.setdefault(row.repository, []).append(i)
            for chosen in by_repo.values():
                chosen.sort(key=lambda i: rows[i].created, reverse=True)
                for rank, i in enumerate(chosen):
                    when = rows[i].created
                    keep = (
                        rule.action == "always"
                        or (rule.action == "latestPushedK" and rank < rule.n)
                        or (rule.action == "nDaysSinceLastPush" and now - when <= pd.Timedelta(days=rule.n))
                    )
                    if keep and out[i] is None:
                        out[i] = (False, f"rule {number}", f"kept by rule {number}: {rule.describe()}")
        return [o if o is not None else (True, "not_retained", "no rule retains it") for o in out]


@dataclass(frozen=True)
class EcrRule:
    """One ECR lifecycle rule (``rulePriority``, ``selection``; the action is always expire)."""

    priority: int
    tag_status: str = "tagged"  # tagged | untagged | any
    tag_prefixes: tuple[str, ...] = ()
    tag_patterns: tuple[str, ...] = ()
    count_type: str = "imageCountMoreThan"  # or sinceImagePushed
    count_number: int = 1
    description: str = ""

    def __post_init__(self) -> None:
        if self.tag_status not in ("tagged", "untagged", "any"):
            raise ValueError(f"EcrRule tag_status must be tagged, untagged or any: {self.tag_status!r}")
        if self.count_type not in ("imageCountMoreThan", "sinceImagePushed"):
            raise ValueError(
                f"EcrRule count_type must be imageCountMoreThan or sinceImagePushed: {self.count_type!r}"
            )
        if self.tag_status == "tagged" and not (self.tag_prefixes or self.tag_patterns):
            raise ValueError("an ECR rule with tagStatus 'tagged' needs tagPrefixList or tagPatternList")

    def selects(self, tags: Sequence[str]) -> bool:
        if self.tag_status == "any":
            return True
        if self.tag_status == "untagged":
            return not tags
        # ECR: every listed prefix (or pattern) must be matched by some tag of the image.
        prefixes_ok = all(any(t.startswith(p) for t in tags) for p in self.tag_prefixes)
        patterns = [
            re.compile(".*".join(re.escape(part) for part in p.split("*"))) for p in self.tag_patterns
        ]
        patterns_ok = all(any(p.fullmatch(t) for t in tags) for p in patterns)
        return bool(tags) and prefixes_ok and patterns_ok


@dataclass(frozen=True)
class EcrPolicy(RetentionPolicy):
    """An ECR lifecycle policy: rules in priority order; an image selected by a rule is decided by that
    rule alone (lower-priority rules never see it). Oldest images expire first."""

    rules: Sequence[EcrRule] = ()

    @classmethod
    def from_json(cls, text: str | dict[str, Any]) -> EcrPolicy:
        """Read ECR's own lifecycle policy JSON (``{"rules": [{"rulePriority": 1, "selection": {...}}]}``)."""
        data = json.loads(text) if isinstance(text, str) else text
        rules = []
        for raw in data.get("rules", []):
            sel = raw.get("selection", {})
            action = raw.get("action", {}).get("type", "expire")
            if action != "expire":
                raise ValueError(f"ECR rule action {action!r}: only 'expire' exists")
            rules.append(
                EcrRule(
                    priority=int(raw["rulePriority"]),
                    tag_status=sel.get("tagStatus", "any"),
                    tag_prefixes=tuple(sel.get("tagPrefixList", ())),
                    tag_patterns=tuple(sel.get("tagPatternList", ())),
                    count_type=sel.get("countType", "imageCountMoreThan"),
                    count_number=int(sel.get("countNumber", 1)),
                    description=raw.get("description", ""),
                )
            )
        return cls(rules=tuple(rules))

    def _decide(self, table: pd.DataFrame, now: pd.Timestamp) -> list[tuple[bool, str, str]]:
        priorities = [r.priority for r in self.rules]
        if len(set(priorities)) != len(priorities):
            raise ValueError(f"ECR rule priorities must be unique, got {priorities}")
        ordered = sorted(self.rules, key=lambda r: r.priority)
        if any(r.tag_status == "any" for r in ordered[:-1]):
            raise ValueError(
                "an ECR rule with tagStatus 'any' must have the lowest priority (highest number)"
            )
        out: list[tuple[bool, str, str] | None] = [None] * len(table)
        rows = _rows(table)
        for i, row in enumerate(rows):
            if row.suspect:
                out[i] = (False, "suspect_date", _suspect_text(row.created))
        claimed: set[int] = set()
        for rule in ordered:
            label = f"priority {rule.priority}"
            by_repo: dict[str, list[int]] = {}
            for i, row in enumerate(rows):
                if i not in claimed and rule.selects(row.tags):
                    claimed.add(i)
                    if out[i] is None:
                        by_repo.setdefault(row.repository, []).append(i)
            for chosen in by_repo.values():
                chosen.sort(key=lambda i: rows[i].created, reverse=True)
                for rank, i in enumerate(chosen):
                    when = rows[i].created
                    if rule.count_type == "imageCountMoreThan":
                        expire = rank >= rule.count_number
                        text = f"{'beyond' if expire else 'within'} the {rule.count_number} newest selected"
                    else:
                        expire = now - when > pd.Timedelta(days=rule.count_number)
                        text = f"pushed {_days(now - when)} ago ({'more' if expire else 'less'} than "
                        text += f"{rule.count_number} days)"
                    out[i] = (expire, label, f"rule {label}: {text}")
        return [o if o is not None else (False, "unmatched", "no rule selects it") for o in out]
