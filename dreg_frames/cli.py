"""The ``dreg-frames`` command line: demo, crawl, report, stale, duplicates, usage, delete."""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

import pandas as pd

from .analysis import duplicates, stale, storage_usage
from .client.errors import DregError, describe
from .client.mediatypes import short_name
from .client.reference import parse_reference
from .client.registry import Registry
from .crawl import Crawl, crawl
from .delete import execute, plan_delete, plan_untag
from .demo import start_demo_registry
from .report import human_bytes, write_report

__all__ = ["main"]


def print_holdings(result: Crawl) -> None:
    """Print every repository and tag the crawl found: digest, media type, platforms, size, created."""
    tags = result.tags
    for repository, group in tags.groupby("repository", observed=True, sort=True):
        print(repository)
        for row in group.to_dict("records"):
            created = row["created"].strftime("%Y-%m-%d") if not pd.isna(row["created"]) else "unknown"
            flag = " (suspect date)" if row["created_suspect"] else ""
            print(
                f"  {row['tag']!s:<14} {str(row['digest'])[:19]}  {short_name(str(row['media_type'])):<13} "
                f"{row['platforms']!s:<28} {human_bytes(row['size']):>10}  {created}{flag}"
            )
    print(
        f"\n{len(result.repositories)} repositories, {len(tags)} tags, {len(result.images)} images, "
        f"{result.layers['layer_digest'].nunique()} distinct layers; {len(result.errors)} errors"
    )


def _progress() -> bool:
    return sys.stderr.isatty()


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors that never repeat a value it did not understand (an unknown
    ``--password VALUE`` would otherwise be printed back)."""

    def error(self, message: str) -> NoReturn:
        if message.startswith("unrecognized arguments:"):
            options = [w.split("=", 1)[0] for w in message.split(":", 1)[1].split() if w.startswith("-")]
            message = f"unrecognized arguments: {' '.join(options) or '(values)'} (values not shown)"
        self.exit(2, f"dreg-frames: error: {message} (see {self.prog} --help)\n")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text[:40]!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _duration(text: str) -> str:
    from .analysis._frames import to_timedelta

    try:
        to_timedelta(text, "--older-than")
    except ValueError:
        raise argparse.ArgumentTypeError(f"cannot read {text[:40]!r} as an age (e.g. 90D, 12h, 30)") from None
    return text


def _regex(text: str) -> str:
    try:
        re.compile(text)
    except re.error as exc:
        raise argparse.ArgumentTypeError(f"{text[:60]!r} is not a regular expression ({exc})") from None
    return text


def _writable_dir(path: str | None, what: str) -> None:
    """Fail before a crawl, not after it, when a folder to write cannot be one."""
    if path is None:
        return
    folder = Path(os.path.expanduser(path))
    if folder.exists() and not folder.is_dir():
        raise DregError(f"{what} {path}: exists and is not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DregError(f"{what} {path}: cannot be created ({exc.strerror or exc})") from None
    if not os.access(folder, os.W_OK):
        raise DregError(f"{what} {path}: not writable")


def _writable_file(path: str | None, what: str, *, makes_folder: bool = False) -> None:
    """The same for a file (``makes_folder``: its writer creates missing folders, as the audit log's does)."""
    if path is None:
        return
    file = Path(os.path.expanduser(path))
    if file.is_dir():
        raise DregError(f"{what} {path}: is a folder; name a file")
    parent = file.parent
    while makes_folder and not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK):
        raise DregError(f"{what} {path}: its folder does not exist or is not writable")


def _registry(args: argparse.Namespace) -> Registry:
    verify: bool | str = args.ca if getattr(args, "ca", None) else not getattr(args, "insecure", False)
    auth = None
    if getattr(args, "user", None):
        password = os.environ.get("DREG_PASSWORD")
        if password is None:
            raise DregError(
                f"--user {args.user} needs the password in the DREG_PASSWORD environment variable"
            )
        auth = (args.user, password)
    return Registry.build_with_manual_client(args.url, verify=verify, auth=auth)


def _source(args: argparse.Namespace) -> Crawl:
    """A saved crawl folder, or a registry URL to crawl now."""
    path = Path(args.source)
    if (path / "crawl.json").exists():
        return Crawl.load(path)
    if path.exists():
        raise DregError(f"{path} is not a saved crawl (no crawl.json); run 'dreg-frames crawl URL -o {path}'")
    args.url = args.source
    return crawl(_registry(args), getattr(args, "repositories", None) or None, progress=_progress())


def cmd_demo(args: argparse.Namespace) -> int:
    started = time.monotonic()
    server, registry = start_demo_registry(port=args.port)
    try:
        print(f"local registry at {server.url} (pid {server.pid}), storage {server.storage}")
        print(f"pushed the sample images from data/ in {time.monotonic() - started:.1f}s\n")
        result = crawl(registry, progress=False)
        print_holdings(result)
        index = write_report(result, args.output)
        print(f"\nreport: {index.resolve()} (tables, plots and a one-page summary)")
        if args.keep_running:
            print(f"registry keeps running at {server.url}; Ctrl-C stops it")
            try:
                while True:
                    time.sleep(3600)
            except KeyboardInterrupt:
                pass
    finally:
        server.cleanup()
    return 0


def cmd_crawl(args: argparse.Namespace) -> int:
    _writable_dir(args.output, "-o/--output")
    _writable_dir(args.cache, "--cache")
    result = crawl(
        _registry(args),
        args.repositories or None,
        workers=args.workers,
        progress=_progress(),
        cache=args.cache,
    )
    out = result.to_csv(args.output) if args.format == "csv" else result.to_parquet(args.output)
    print(f"{result!r}\nsaved to {out}")
    if len(result.errors):
        print(f"{len(result.errors)} errors: see {out}/errors.{args.format}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    _writable_dir(args.output, "-o/--output")
    result = _source(args)
    index = write_report(
        result,
        args.output,
        older_than=args.older_than,
        keep_latest=args.keep_latest,
        snapshot_store=args.snapshot_store,
        events=args.events,
    )
    print(f"report: {index}")
    return 0


def _show(frame: pd.DataFrame, csv: str | None) -> None:
    if csv:
        frame.to_csv(csv, index=False)
        print(f"{len(frame)} rows written to {csv}")
    else:
        with pd.option_context("display.width", 200, "display.max_colwidth", 60, "display.max_rows", 200):
            print(frame.to_string(index=False) if len(frame) else "(none)")


def cmd_stale(args: argparse.Namespace) -> int:
    _writable_file(args.csv, "--csv")
    result = _source(args)
    out = stale(result.images, args.older_than, args.keep_latest, args.keep, args.delete)
    _show(out.assign(tags=out["tags"].map(" ".join)), args.csv)
    return 0


def cmd_duplicates(args: argparse.Namespace) -> int:
    _writable_file(args.csv, "--csv")
    out = duplicates(_source(args).layers)
    _show(
        out.assign(digests=out["digests"].map(" ".join), references=out["references"].map(" ".join)), args.csv
    )
    return 0


def cmd_usage(args: argparse.Namespace) -> int:
    _writable_file(args.csv, "--csv")
    out = storage_usage(_source(args).layers, by=args.by)
    if not args.csv:
        for column in ("logical_bytes", "stored_bytes", "exclusive_bytes", "shared_bytes"):
            out[column.replace("_bytes", "")] = out.pop(column).map(human_bytes)
    _show(out, args.csv)
    return 0


def cmd_delete(args: argparse.Namespace) -> int:
    ref = parse_reference(args.reference)
    if ref.digest is None:
        raise DregError(f"delete takes REPOSITORY@DIGEST (by digest only), got {args.reference!r}")
    _writable_file(args.audit_log, "--audit-log", makes_folder=True)
    registry = _registry(args)
    result = crawl(registry, [ref.name], progress=False)
    plan = plan_delete(result, [(ref.name, ref.digest)], registry=registry, referrers=args.referrers)
    return _carry_out(registry, plan, args)


def cmd_untag(args: argparse.Namespace) -> int:
    ref = parse_reference(args.reference)
    if ref.tag is None or ref.digest is not None:
        raise DregError(f"untag takes REPOSITORY:TAG, got {args.reference!r}")
    _writable_file(args.audit_log, "--audit-log", makes_folder=True)
    registry = _registry(args)
    result = crawl(registry, [ref.name], progress=False)
    return _carry_out(registry, plan_untag(result, [(ref.name, ref.tag)], registry=registry), args)


def _carry_out(registry: Registry, plan: pd.DataFrame, args: argparse.Namespace) -> int:
    """Show every row of a plan (what goes along with it too), execute it, print the outcomes."""
    for row in plan.to_dict("records"):
        of = row["referrer_of"]
        along = f"  (belongs to {of[:19]}…, a {row['kind']})" if isinstance(of, str) else ""
        print(f"{row['action']} {row['repository']}@{row['digest']}{along}")
        print(f"  tags that go: {', '.join(row['tags']) or '(none)'}")
        print(f"  garbage collection would free: {human_bytes(row['reclaimable_bytes'])}")
        for warning in row["warnings"]:
            print(f"  warning: {warning}")
    done = execute(registry, plan, dry_run=not args.yes, audit_log=args.audit_log)
    for row in done.to_dict("records"):
        detail = f" ({row['error']})" if row["error"] else ""
        print(f"  {row['repository']}@{str(row['digest'])[:19]}…: {row['outcome']}{detail}")
    if (done["outcome"] == "dry run").any():
        print("  nothing changed; pass --yes to do it")
    return 0 if done["outcome"].isin(["deleted", "untagged", "dry run"]).all() else 1


def cmd_dashboard(args: argparse.Namespace) -> int:
    from .dashboard import serve  # Voila and the widgets load only for this command

    if args.user and "DREG_PASSWORD" not in os.environ:
        raise DregError(f"--user {args.user} needs the password in the DREG_PASSWORD environment variable")
    settings = {
        "url": args.url,
        "user": args.user,
        "ca": args.ca,
        "insecure": args.insecure,
        "repositories": args.repositories,
        "older_than": args.older_than,
        "keep_latest": args.keep_latest,
        "audit_log": args.audit_log,
    }
    return serve(settings, args.port, open_browser=args.open)


def _add_dashboard(sub: Any) -> None:
    dash = sub.add_parser(
        "dashboard", help="a web page with tabs (storage, stale, duplicates, cleanup, audit log), via Voila"
    )
    _add_connection(dash)
    dash.add_argument("--port", type=int, default=8866, help="port on 127.0.0.1 (default 8866)")
    dash.add_argument("--older-than", default="180D", help="age before an image is stale (default 180D)")
    dash.add_argument("--keep-latest", type=int, default=2, help="newest images kept per repository")
    dash.add_argument("--audit-log", default="audit.csv", help="append-only CSV log (default: audit.csv)")
    dash.add_argument("--open", action="store_true", help="open it in the web browser")
    dash.set_defaults(func=cmd_dashboard)


def _listen(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or not 0 <= int(port) < 65536:
        raise argparse.ArgumentTypeError(f"--listen takes HOST:PORT, e.g. 127.0.0.1:5001, got {text!r}")
    return host.strip("[]"), int(port)


def cmd_events(args: argparse.Namespace) -> int:
    import signal

    from .events import EventReceiver, digest_activity, load_events

    if args.events_command == "summary":
        activity = digest_activity(load_events(args.store, since=args.since))
        _show(activity.sort_values("last_pulled", ascending=False, na_position="last"), args.csv)
        return 0
    token = os.environ.get(args.token_env) if args.token_env else None
    host, port = args.listen
    receiver = EventReceiver(
        args.store,
        host=host,
        port=port,
        path=args.path,
        token=token,
        max_body=args.max_body,
        fsync=args.fsync,
    )
    # SIGTERM (systemd, docker stop) stops as Ctrl-C does; unanswered events are sent again.
    signal.signal(signal.SIGTERM, lambda *_: receiver.request_stop())
    receiver.start()
    print(f"receiving registry events at {receiver.url}, storing them in {receiver.store.path}")
    if token:
        print(f"requests must carry 'Authorization: Bearer <${args.token_env}>'")
    sys.stdout.flush()
    receiver.serve_forever()
    print(f"stopped: {receiver.stats.as_dict()}")
    return 0


def _add_events(sub: Any) -> None:
    events = sub.add_parser("events", help="registry notifications: receive and store push/pull events")
    actions = events.add_subparsers(dest="events_command", required=True)
    serve = actions.add_parser("serve", help="the endpoint a registry's notifications config points at")
    serve.add_argument(
        "--listen", type=_listen, default=("127.0.0.1", 5001), help="HOST:PORT (127.0.0.1:5001)"
    )
    serve.add_argument("--store", required=True, help="SQLite event store (created if missing)")
    serve.add_argument("--path", default="/events", help="URL path events are POSTed to (default /events)")
    serve.add_argument(
        "--token-env",
        default="DREG_EVENTS_TOKEN",
        help="variable holding the shared secret: when set, 'Authorization: Bearer <secret>' is required",
    )
    serve.add_argument("--max-body", type=int, default=4 * 1024 * 1024, help="largest body accepted, bytes")
    serve.add_argument("--fsync", action="store_true", help="fsync each event (survives power loss; slower)")
    serve.set_defaults(func=cmd_events)
    summary = actions.add_parser("summary", help="per digest: pushed, last pulled, pulls in 30 days")
    summary.add_argument("--store", required=True, help="SQLite event store")
    summary.add_argument("--since", help="only events from this time on (e.g. 2026-11-01)")
    summary.add_argument("--csv", help="write the table to this CSV file")
    summary.set_defaults(func=cmd_events)


def _add_connection(parser: argparse.ArgumentParser, what: str = "url") -> None:
    if what == "url":
        parser.add_argument("url", help="registry URL, e.g. https://registry.example.com")
    else:
        parser.add_argument("source", help="a saved crawl folder, or a registry URL to crawl now")
    parser.add_argument("--user", help="user name; the password is read from $DREG_PASSWORD")
    parser.add_argument("--ca", help="CA bundle (PEM) that signed the registry's certificate")
    parser.add_argument("--insecure", action="store_true", help="do not verify TLS certificates")
    parser.add_argument(
        "--repositories", nargs="*", help="repositories to crawl (for registries without a catalog)"
    )


def _add_stale(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--older-than", default="90D", type=_duration, help="age before an image is stale (default 90D)"
    )
    parser.add_argument(
        "--keep-latest", type=int, default=3, help="newest images kept per repository (default 3)"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="dreg-frames", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser(
        "demo", help="start a local registry, push the sample images, crawl, write the report"
    )
    demo.add_argument("--port", type=int, default=None, help="port on 127.0.0.1 (default: a free one)")
    demo.add_argument("-o", "--output", default="dreg-frames-report", help="report folder")
    demo.add_argument("--keep-running", action="store_true", help="keep the registry up until Ctrl-C")
    demo.set_defaults(func=cmd_demo)

    crawl_p = sub.add_parser("crawl", help="crawl a registry into a folder of frames")
    _add_connection(crawl_p)
    crawl_p.add_argument("-o", "--output", required=True, help="folder to write")
    crawl_p.add_argument("--format", choices=("parquet", "csv"), default="parquet")
    crawl_p.add_argument("--workers", type=_positive_int, default=8, help="concurrent requests (default 8)")
    crawl_p.add_argument("--cache", help="content cache folder (recrawls only HEAD each tag)")
    crawl_p.set_defaults(func=cmd_crawl)

    report = sub.add_parser("report", help="CSV tables, PNG plots and an HTML summary")
    _add_connection(report, "source")
    report.add_argument("-o", "--output", required=True, help="report folder")
    report.add_argument("--older-than", default="180D", type=_duration)
    report.add_argument("--keep-latest", type=int, default=2)
    report.add_argument("--snapshot-store", help="crawl snapshots (crawl(snapshot_store=)): a trend section")
    report.add_argument("--events", help="an event store (dreg-frames events serve): pushes, pulls per day")
    report.set_defaults(func=cmd_report)

    stale_p = sub.add_parser("stale", help="digests a cleanup would delete, with the reason")
    _add_connection(stale_p, "source")
    _add_stale(stale_p)
    stale_p.add_argument("--keep", type=_regex, help="regex: tags to keep")
    stale_p.add_argument("--delete", type=_regex, help="regex: only tags matching this may go")
    stale_p.add_argument("--csv", help="write the table to this CSV file")
    stale_p.set_defaults(func=cmd_stale)

    dup = sub.add_parser(
        "duplicates", help="one digest under many names; the same content under other digests"
    )
    _add_connection(dup, "source")
    dup.add_argument("--csv", help="write the table to this CSV file")
    dup.set_defaults(func=cmd_duplicates)

    usage = sub.add_parser("usage", help="storage: logical, stored, exclusive and shared bytes")
    _add_connection(usage, "source")
    usage.add_argument("--by", default="repository", choices=("repository", "namespace", "tag", "digest"))
    usage.add_argument("--csv", help="write the table (in bytes) to this CSV file")
    usage.set_defaults(func=cmd_usage)

    delete = sub.add_parser("delete", help="delete one manifest by digest, after showing every tag that goes")
    _add_connection(delete)
    delete.add_argument("reference", help="REPOSITORY@sha256:...")
    mode = delete.add_mutually_exclusive_group()
    mode.add_argument("--dry-run", action="store_true", default=True, help="only log what would go (default)")
    mode.add_argument("--yes", action="store_true", help="really delete")
    delete.add_argument("--audit-log", default="audit.csv", help="append-only CSV log (default: audit.csv)")
    delete.add_argument(
        "--referrers",
        choices=("cascade", "keep", "block"),
        default="cascade",
        help="its signatures, attestations and SBOMs: delete them too (default), leave them, or refuse",
    )
    delete.set_defaults(func=cmd_delete)
    untag = sub.add_parser("untag", help="remove one tag, keeping the digest and its other tags")
    _add_connection(untag)
    untag.add_argument("reference", help="REPOSITORY:TAG")
    untag_mode = untag.add_mutually_exclusive_group()
    untag_mode.add_argument("--dry-run", action="store_true", default=True, help="only log (default)")
    untag_mode.add_argument("--yes", action="store_true", help="really untag")
    untag.add_argument("--audit-log", default="audit.csv", help="append-only CSV log (default: audit.csv)")
    untag.set_defaults(func=cmd_untag)
    _add_dashboard(sub)
    _add_events(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.func(args)
        return code
    except DregError as exc:
        message, hint = describe(exc, cli=True)
        print(f"dreg-frames: error: {message}", file=sys.stderr)
        if hint:
            print(f"dreg-frames: hint: {hint}", file=sys.stderr)
        return 2
    except (OSError, ValueError) as exc:
        # A file that cannot be written, a value a helper refused: one line, never a traceback.
        print(f"dreg-frames: error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
