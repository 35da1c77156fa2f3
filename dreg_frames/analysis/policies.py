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
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from ..dask import is_dask
from ._frames import TagRows, as_frame, digest_index, now_utc, to_timedelta
from .in_use import in_use_by
from .referrers import follow_subjects

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
# Added to the result when events were given: what the usage rules read.
USAGE_COLUMNS = ["last_pushed", "last_pulled", "pulls_30d", "seen_since"]
_NEEDED = ["repository", "tag", "digest", "created"]


@dataclass
class Decisions:
    """The verdict per digest-table row, as a policy and then each protection pass leave it.

    A pass that keeps rows calls :meth:`keep`; the row's previous verdict stays in ``explain``
    after the new reason, so nothing that decided is hidden."""

    candidate: np.ndarray
    rule: np.ndarray
    explain: np.ndarray

    def keep(self, mask: np.ndarray, rule: str, texts: Sequence[str]) -> None:
        for i, text in zip(np.flatnonzero(mask), texts, strict=True):
            before = "would be deleted" if self.candidate[i] else "kept"
            self.explain[i] = f"{text}; without that: {before} ({self.rule[i]}: {self.explain[i]})"
            self.rule[i] = rule
            self.candidate[i] = False


_THIRTY_DAYS = pd.Timedelta(days=30)


@dataclass(frozen=True)
class Context:
    """What a policy is evaluated with besides the crawl: the time, and what events and the
    clusters say (``usage``: activity columns are on the digest table; ``in_use``: references)."""

    now: pd.Timestamp
    usage: bool = False
    recording_start: pd.Timestamp | None = None
    min_history: pd.Timedelta = _THIRTY_DAYS
    in_use: pd.DataFrame | None = None


class RetentionPolicy:
    """Base of the policies: ``evaluate(frame, now=None)`` -> one row per (repository, digest).

    ``events`` (a frame from :func:`~dreg_frames.events.load_events` or its
    :func:`~dreg_frames.events.digest_activity`) gives the rules that read push and pull times
    their data; a frame from ``Crawl.with_events`` carries it already. ``recording_start`` says since
    when events were recorded (default: the events' own ``attrs``): a digest without a recorded pull
    is only called unpulled for the time the recording covers. ``in_use`` (see
    :func:`~dreg_frames.analysis.in_use.in_use`) keeps every digest a reference names.
    """

    def uses_events(self) -> bool:
        """True when the policy's rules read pull events (it cannot be evaluated without them)."""
        return False

    def evaluate(
        self,
        frame: Any,
        now: datetime | str | pd.Timestamp | None = None,
        *,
        events: pd.DataFrame | None = None,
        recording_start: datetime | str | pd.Timestamp | None = None,
        in_use: pd.DataFrame | None = None,
    ) -> pd.DataFrame:
        if is_dask(frame):  # one row per (repository, tag, manifest) is all a policy reads
            from ..dask.analysis import policy_frame

            frame = policy_frame(frame)
        source = as_frame(frame, _NEEDED, type(self).__name__, prefer=("images", "tags", "layers"))
        when = now_utc(now)
        table, tags = digest_index(source)
        start = attach_usage(table, source, events, recording_start, when)
        if self.uses_events() and start is None:
            raise ValueError(
                f"{type(self).__name__}: its rules read push/pull times: pass events=load_events(store) "
                "or a frame from Crawl.with_events(events)"
            )
        context = Context(
            when,
            usage=start is not None,
            recording_start=start,
            min_history=getattr(self, "min_history_delta", _THIRTY_DAYS),
            in_use=in_use,
        )
        candidate, rule, explain = self._decide_all(table, tags, when, context)
        decisions = Decisions(
            np.asarray(candidate, dtype=bool).copy(), rule.astype(object), explain.astype(object)
        )
        for protection in self._protections():
            protection(table, source, decisions, context)
        follow_referrers(table, source, decisions)
        table["candidate"] = decisions.candidate
        table["rule"] = decisions.rule
        table["explain"] = decisions.explain
        columns = RESULT_COLUMNS + (USAGE_COLUMNS if context.usage else [])
        return table[columns].sort_values(["repository", "created", "digest"]).reset_index(drop=True)

    def _protections(self) -> list[Callable[[pd.DataFrame, pd.DataFrame, Decisions, Context], None]]:
        """Passes run after the policy's own rules, in order; each may only keep rows."""
        return [protect_in_use]

    def _decide_all(
        self, table: pd.DataFrame, tags: TagRows, now: pd.Timestamp, context: Context
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        decisions = self._decide(table, now, context)
        return (
            np.array([d[0] for d in decisions], dtype=bool),
            np.array([d[1] for d in decisions], dtype=object),
            np.array([d[2] for d in decisions], dtype=object),
        )

    def _decide(
        self, table: pd.DataFrame, now: pd.Timestamp, context: Context
    ) -> list[tuple[bool, str, str]]:
        raise NotImplementedError


def follow_referrers(table: pd.DataFrame, source: pd.DataFrame, decisions: Decisions) -> None:
    """Signatures, attestations, SBOMs and tag-schema indexes take their subject's verdict (every
    vocabulary alike): kept while it stays, a candidate when it goes; an orphan is a candidate."""
    candidate, changes = follow_subjects(table, source, decisions.candidate)
    for i, rule, text in changes:
        before = "would be deleted" if decisions.candidate[i] else "kept"
        decisions.explain[i] = f"{text}; on its own: {before} ({decisions.rule[i]}: {decisions.explain[i]})"
        decisions.rule[i] = rule
    decisions.candidate[:] = candidate


def protect_in_use(table: pd.DataFrame, source: pd.DataFrame, decisions: Decisions, context: Context) -> None:
    """Keep every digest an in-use reference names: "in use by <namespace/pod> (as <image>)"."""
    if context.in_use is None or context.in_use.empty:
        return
    users = in_use_by(source, context.in_use)
    if not users:
        return
    keys = list(zip(table["repository"].astype(str), table["digest"].astype(str), strict=True))
    found = [users.get(key) for key in keys]
    mask = np.array([f is not None for f in found], dtype=bool)
    texts = [_used_by_text(f) for f in found if f is not None]
    decisions.keep(mask, "in_use", texts)


def _used_by_text(users: list[str]) -> str:
    shown = ", ".join(users[:3])
    more = f" and {len(users) - 3} more" if len(users) > 3 else ""
    return f"in use by {shown}{more}"


def attach_usage(
    table: pd.DataFrame,
    source: pd.DataFrame,
    events: pd.DataFrame | None,
    recording_start: datetime | str | pd.Timestamp | None,
    now: pd.Timestamp,
) -> pd.Timestamp | None:
    """Put push/pull columns on the digest table (in place); returns the recording start, or None
    when there is no event data.

    ``seen_since`` is when a digest's pull history starts: the latest of the recording start, its
    last recorded push and its (trustworthy) created date. Before it, no pull could have been seen.
    """
    if events is not None:
        start_hint = events.attrs.get("recording_start")
    elif "last_pulled" in source.columns:
        start_hint = source.attrs.get("recording_start")
    else:
        return None
    start_value = recording_start if recording_start is not None else start_hint
    if start_value is None:
        raise ValueError(
            "the events' recording start is unknown: pass recording_start= (when the receiver began "
            "storing events); without it no digest can be called unpulled"
        )
    if events is not None:
        from ..events.frames import activity_for

        per_row = activity_for(source, events, now)
    else:
        per_row = source[[c for c in _ACTIVITY if c in source.columns]]
    start = now_utc(start_value)
    keyed = per_row.assign(
        repository=source["repository"].astype(str).to_numpy(), digest=source["digest"].astype(str).to_numpy()
    ).drop_duplicates(["repository", "digest"])
    keys = pd.MultiIndex.from_arrays([table["repository"].astype(str), table["digest"].astype(str)])
    found = keyed.set_index(["repository", "digest"]).reindex(keys)
    for column in ("last_pushed", "last_pulled", "pushed"):
        table[column] = pd.to_datetime(found[column].to_numpy(), utc=True) if column in found else pd.NaT
    table["pulls_30d"] = (
        found["pulls_30d"].fillna(0).astype("int64").to_numpy() if "pulls_30d" in found else 0
    )
    trusted_created = table["created"].where(~table["created_suspect"].astype(bool))
    candidates = pd.DataFrame(
        {
            "recording started": pd.Series(start, index=table.index),
            "pushed": table["last_pushed"],
            "created": pd.to_datetime(trusted_created, utc=True),
        }
    )
    table["seen_since"] = candidates.max(axis=1)
    table["seen_source"] = candidates.fillna(pd.Timestamp.min.tz_localize("UTC")).idxmax(axis=1)
    return start


_ACTIVITY = ["pushed", "last_pushed", "first_pulled", "last_pulled", "pulls", "pulls_30d"]


def _age(delta: pd.Timedelta) -> str:
    seconds = delta.total_seconds()
    if abs(seconds) >= 86400:
        return f"{seconds / 86400:.0f} days"
    if abs(seconds) >= 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds:.1f} s"


def not_pulled_within(
    table: pd.DataFrame, now: pd.Timestamp, window: pd.Timedelta
) -> tuple[np.ndarray, list[str]]:
    """Which digests events prove unpulled for longer than ``window``, and what decided, per row.

    The evidence is the last recorded pull, or when there is none, the time since ``seen_since``
    (recording start, last push, created): a digest whose history is shorter than the window is never
    called unpulled, however new the recording.
    """
    idle = np.zeros(len(table), dtype=bool)
    texts: list[str] = []
    for i, (pulled, seen, source) in enumerate(
        zip(
            table["last_pulled"].tolist(),
            table["seen_since"].tolist(),
            table["seen_source"].tolist(),
            strict=True,
        )
    ):
        if not pd.isna(pulled) and pulled >= seen:
            idle[i] = now - pulled > window
            what = f"last pulled {_age(now - pulled)} ago ({pulled:%Y-%m-%d %H:%M:%S} UTC, pull events)"
        else:
            idle[i] = now - seen > window
            what = f"no pull recorded since {source} {seen:%Y-%m-%d %H:%M:%S} UTC ({_age(now - seen)} ago)"
            if not pd.isna(pulled):
                what += f"; last pull before that, {_age(now - pulled)} ago"
        texts.append(what + (f", more than {_age(window)}" if idle[i] else f", within {_age(window)}"))
    return idle, texts


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

    ``not_pulled_for`` (needs events) also keeps every digest pulled within that time, or whose
    recorded history is shorter than it (see :func:`not_pulled_within`).
    """

    keep_n: int | None = 10
    older_than: str | pd.Timedelta | int | None = "90d"
    name_regex: str | None = ".*"
    name_regex_keep: str | None = None
    keep_latest_tag: bool = True
    not_pulled_for: str | pd.Timedelta | int | None = None

    def uses_events(self) -> bool:
        return self.not_pulled_for is not None

    def _decide_all(
        self, table: pd.DataFrame, tags: TagRows, now: pd.Timestamp, context: Context
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
        idle_why: list[str] | None = None
        if self.not_pulled_for is not None:
            window = to_timedelta(self.not_pulled_for, "not_pulled_for")
            assert window is not None
            idle, idle_why = not_pulled_within(table, now, window)
            assign(~idle, "not_pulled_for", pd.Series(idle_why, index=range(n), dtype=object))
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
        text: pd.Series | str = why + "; no tag is kept"
        if idle_why is not None:
            text = why + "; " + pd.Series(idle_why, index=range(n), dtype=object) + "; no tag is kept"
        assign(candidate, "older_than" if age is not None else "keep_n", text)
        return candidate, rule, explain.to_numpy(dtype=object)


class _Row(NamedTuple):
    repository: str
    tags: tuple[str, ...]
    created: pd.Timestamp
    suspect: bool
    last_pushed: Any  # Timestamp or NaT (no events, or no push recorded)
    first_pushed: Any


def _rows(table: pd.DataFrame) -> list[_Row]:
    """The digest table as typed rows, for the rule-by-rule policies."""
    n = len(table)
    last = table["last_pushed"].tolist() if "last_pushed" in table else [pd.NaT] * n
    first = table["pushed"].tolist() if "pushed" in table else [pd.NaT] * n
    return [
        _Row(str(r), tuple(t), c, bool(s), lp, fp)
        for r, t, c, s, lp, fp in zip(
            table["repository"].tolist(),
            table["tags"].tolist(),
            table["created"].tolist(),
            table["created_suspect"].tolist(),
            last,
            first,
            strict=True,
        )
    ]


def _push_time(row: _Row, first: bool = False) -> tuple[Any, str]:
    """The time a push rule reads, and where it comes from: the recorded push, else ``created``.

    None when neither is usable (no push recorded and a suspect created date)."""
    recorded = row.first_pushed if first else row.last_pushed
    if not pd.isna(recorded):
        return recorded, "push event"
    if row.suspect:
        return None, _suspect_text(row.created)
    return row.created, "created date; no push recorded"


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


_PUSH_ACTIONS = ("latestPushedK", "nDaysSinceLastPush")
_PULL_ACTIONS = ("latestPulledN", "nDaysSinceLastPull")


@dataclass(frozen=True)
class HarborRule:
    """One Harbor retention rule: which repositories and tags, and what it retains.

    ``action``: ``"latestPushedK"`` (retain the ``n`` most recently pushed), ``"nDaysSinceLastPush"``
    (retain those pushed within ``n`` days), ``"latestPulledN"`` (the ``n`` most recently pulled),
    ``"nDaysSinceLastPull"`` (those pulled within ``n`` days) or ``"always"``. Push times are the
    recorded push events when events are given, else the image's ``created``; pull rules need events.
    """

    repositories: str = "**"
    repositories_exclude: bool = False
    tags: str = "**"
    tags_exclude: bool = False
    action: str = "latestPushedK"
    n: int = 10

    def __post_init__(self) -> None:
        if self.action not in (*_PUSH_ACTIONS, *_PULL_ACTIONS, "always"):
            raise ValueError(
                "HarborRule action must be latestPushedK, nDaysSinceLastPush, latestPulledN, "
                f"nDaysSinceLastPull or always: {self.action!r}"
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
            "latestPulledN": f"retain the {self.n} most recently pulled",
            "nDaysSinceLastPull": f"retain those pulled within {self.n} days",
            "always": "retain always",
        }[self.action]
        repo = ("not " if self.repositories_exclude else "") + self.repositories
        tag = ("not " if self.tags_exclude else "") + self.tags
        return f"{what} (repositories {repo}, tags {tag})"


def _history_short(seen: Any, source: str, now: pd.Timestamp, min_history: pd.Timedelta) -> str | None:
    """Why a digest without a recorded pull cannot be ranked as unpulled yet, or None if it can."""
    if now - seen >= min_history:
        return None
    return (
        f"no pull recorded, but only {_age(now - seen)} of history since {source} "
        f"{seen:%Y-%m-%d %H:%M:%S} UTC (less than {_age(min_history)}): not judged"
    )


@dataclass(frozen=True)
class HarborPolicy(RetentionPolicy):
    """Harbor tag retention: an artifact is kept if **any** rule retains it; in a repository that some
    rule covers, what no rule retains is deleted; repositories no rule covers are left alone.

    ``min_history``: a digest with no recorded pull is ranked below every pulled one by
    ``latestPulledN`` only once its history (since the recording start, its last push or its
    created date) is at least this long; before that it is retained, not judged.
    """

    rules: Sequence[HarborRule] = field(default_factory=lambda: [HarborRule()])
    min_history: str | pd.Timedelta | int = "30D"

    def uses_events(self) -> bool:
        return any(rule.action in _PULL_ACTIONS for rule in self.rules)

    @property
    def min_history_delta(self) -> pd.Timedelta:
        delta = to_timedelta(self.min_history, "min_history")
        assert delta is not None
        return delta

    def _decide(
        self, table: pd.DataFrame, now: pd.Timestamp, context: Context
    ) -> list[tuple[bool, str, str]]:
        out: list[tuple[bool, str, str] | None] = [None] * len(table)
        why_not: list[list[str]] = [[] for _ in range(len(table))]
        rows = _rows(table)
        judged = [True] * len(rows)
        for i, row in enumerate(rows):
            if not any(rule.covers(row.repository) for rule in self.rules):
                out[i] = (False, "out_of_scope", "no rule covers this repository")
                judged[i] = False
            elif row.suspect and not context.usage:
                out[i] = (False, "suspect_date", _suspect_text(row.created))
                judged[i] = False

        def retain(i: int, label: str, text: str) -> None:
            if out[i] is None:
                out[i] = (False, label, text)

        for number, rule in enumerate(self.rules, 1):
            label = f"rule {number}"
            by_repo: dict[str, list[int]] = {}
            for i, row in enumerate(rows):
                if judged[i] and rule.covers(row.repository) and rule.selects(row.tags):
                    by_repo.setdefault(row.repository, []).append(i)
            chosen_all = [i for chosen in by_repo.values() for i in chosen]
            if rule.action == "always":
                for i in chosen_all:
                    retain(i, label, f"kept by {label}: {rule.describe()}")
            elif rule.action in _PUSH_ACTIONS:
                self._push_rule(rule, label, rows, by_repo, now, retain, why_not)
            elif rule.action == "nDaysSinceLastPull":
                window = pd.Timedelta(days=rule.n)
                idle, texts = not_pulled_within(table, now, window)
                for i in chosen_all:
                    if idle[i]:
                        why_not[i].append(f"{label}: {texts[i]}")
                    else:
                        retain(i, label, f"kept by {label}: {rule.describe()}: {texts[i]}")
            else:  # latestPulledN
                last_pulled: list[Any] = table["last_pulled"].tolist()
                seen_since: list[Any] = table["seen_since"].tolist()
                seen_source: list[str] = table["seen_source"].astype(str).tolist()
                for chosen in by_repo.values():
                    pulled = [i for i in chosen if not pd.isna(last_pulled[i])]
                    pulled.sort(key=lambda i: last_pulled[i], reverse=True)
                    for rank, i in enumerate(pulled):
                        when = last_pulled[i]
                        text = f"#{rank + 1} by last pull, {_age(now - when)} ago (pull events)"
                        if rank < rule.n:
                            retain(i, label, f"kept by {label}: {rule.describe()}: {text}")
                        else:
                            why_not[i].append(f"{label}: {text}, not among the {rule.n} most recently pulled")
                    for i in chosen:
                        if i in pulled:
                            continue
                        short = _history_short(seen_since[i], seen_source[i], now, context.min_history)
                        if short is not None:
                            retain(i, label, f"kept by {label}: {short}")
                        else:
                            seen = seen_since[i]
                            why_not[i].append(
                                f"{label}: no pull recorded in {_age(now - seen)} since "
                                f"{seen_source[i]} {seen:%Y-%m-%d}"
                            )
        return [
            o
            if o is not None
            else (
                True,
                "not_retained",
                "no rule retains it" + (": " + "; ".join(why_not[i]) if why_not[i] else ""),
            )
            for i, o in enumerate(out)
        ]

    @staticmethod
    def _push_rule(
        rule: HarborRule,
        label: str,
        rows: list[_Row],
        by_repo: dict[str, list[int]],
        now: pd.Timestamp,
        retain: Callable[[int, str, str], None],
        why_not: list[list[str]],
    ) -> None:
        for chosen in by_repo.values():
            dated = []
            for i in chosen:
                when, source = _push_time(rows[i])
                if when is None:
                    retain(i, "suspect_date", source)
                else:
                    dated.append((i, when, source))
            dated.sort(key=lambda item: item[1], reverse=True)
            for rank, (i, when, source) in enumerate(dated):
                text = f"pushed {_age(now - when)} ago ({source})"
                if rule.action == "latestPushedK":
                    keep = rank < rule.n
                    text = f"#{rank + 1} by push time, {text}"
                else:
                    keep = now - when <= pd.Timedelta(days=rule.n)
                if keep:
                    retain(i, label, f"kept by {label}: {rule.describe()}")
                else:
                    why_not[i].append(f"{label}: {text}")


@dataclass(frozen=True)
class EcrRule:
    """One ECR lifecycle rule (``rulePriority``, ``selection``; the action is always expire)."""

    priority: int
    tag_status: str = "tagged"  # tagged | untagged | any
    tag_prefixes: tuple[str, ...] = ()
    tag_patterns: tuple[str, ...] = ()
    count_type: str = "imageCountMoreThan"  # or sinceImagePushed, sinceImagePulled (needs events)
    count_number: int = 1
    description: str = ""

    def __post_init__(self) -> None:
        if self.tag_status not in ("tagged", "untagged", "any"):
            raise ValueError(f"EcrRule tag_status must be tagged, untagged or any: {self.tag_status!r}")
        if self.count_type not in ("imageCountMoreThan", "sinceImagePushed", "sinceImagePulled"):
            raise ValueError(
                "EcrRule count_type must be imageCountMoreThan, sinceImagePushed or sinceImagePulled: "
                f"{self.count_type!r}"
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

    def uses_events(self) -> bool:
        return any(rule.count_type == "sinceImagePulled" for rule in self.rules)

    def _decide(
        self, table: pd.DataFrame, now: pd.Timestamp, context: Context
    ) -> list[tuple[bool, str, str]]:
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
        if not context.usage:
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
            if rule.count_type == "sinceImagePulled":
                idle, texts = not_pulled_within(table, now, pd.Timedelta(days=rule.count_number))
                for i in (i for chosen in by_repo.values() for i in chosen):
                    out[i] = (bool(idle[i]), label, f"rule {label}: {texts[i]}")
                continue
            for chosen in by_repo.values():
                # ECR orders by imagePushedAt, the first push: the recorded one, else created.
                dated = []
                for i in chosen:
                    when, source = _push_time(rows[i], first=True)
                    if when is None:
                        out[i] = (False, "suspect_date", source)
                    else:
                        dated.append((i, when, source))
                dated.sort(key=lambda item: item[1], reverse=True)
                for rank, (i, when, source) in enumerate(dated):
                    if rule.count_type == "imageCountMoreThan":
                        expire = rank >= rule.count_number
                        text = f"{'beyond' if expire else 'within'} the {rule.count_number} newest selected"
                    else:
                        expire = now - when > pd.Timedelta(days=rule.count_number)
                        text = f"pushed {_days(now - when)} ago ({'more' if expire else 'less'} than "
                        text += f"{rule.count_number} days)"
                    if context.usage:
                        text += f" [{source}]"
                    out[i] = (expire, label, f"rule {label}: {text}")
        return [o if o is not None else (False, "unmatched", "no rule selects it") for o in out]
