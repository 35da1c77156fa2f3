"""The ``dreg-frames`` command line: demo, crawl, report, stale, duplicates, usage, delete."""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from .analysis import duplicates, stale, storage_usage
from .client.errors import (
    AuthenticationError,
    CatalogUnavailable,
    DregError,
    PermissionDenied,
    TLSError,
    TransportError,
)
from .client.mediatypes import short_name
from .client.reference import parse_reference
from .client.registry import Registry
from .crawl import Crawl, crawl
from .delete import execute, plan_delete
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
    result = _source(args)
    index = write_report(result, args.output, older_than=args.older_than, keep_latest=args.keep_latest)
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
    result = _source(args)
    out = stale(result.images, args.older_than, args.keep_latest, args.keep, args.delete)
    _show(out.assign(tags=out["tags"].map(" ".join)), args.csv)
    return 0


def cmd_duplicates(args: argparse.Namespace) -> int:
    out = duplicates(_source(args).layers)
    _show(
        out.assign(digests=out["digests"].map(" ".join), references=out["references"].map(" ".join)), args.csv
    )
    return 0


def cmd_usage(args: argparse.Namespace) -> int:
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
    registry = _registry(args)
    result = crawl(registry, [ref.name], progress=False)
    plan = plan_delete(result, [(ref.name, ref.digest)], registry=registry)
    row = plan.iloc[0]
    print(f"{ref.name}@{ref.digest}")
    print(f"  tags that go with it: {', '.join(row['tags']) or '(none)'}")
    print(f"  garbage collection would free: {human_bytes(row['reclaimable_bytes'])}")
    for warning in row["warnings"]:
        print(f"  warning: {warning}")
    done = execute(registry, plan, dry_run=not args.yes, audit_log=args.audit_log).iloc[0]
    print(f"  outcome: {done['outcome']}" + (f" ({done['error']})" if done["error"] else ""))
    if done["outcome"] == "dry run":
        print("  nothing changed; pass --yes to delete")
    return 0 if done["outcome"] in ("deleted", "dry run") else 1


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
    parser.add_argument("--older-than", default="90D", help="age before an image is stale (default 90D)")
    parser.add_argument(
        "--keep-latest", type=int, default=3, help="newest images kept per repository (default 3)"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dreg-frames", description=__doc__)
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
    crawl_p.add_argument("--workers", type=int, default=8)
    crawl_p.add_argument("--cache", help="content cache folder (recrawls only HEAD each tag)")
    crawl_p.set_defaults(func=cmd_crawl)

    report = sub.add_parser("report", help="CSV tables, PNG plots and an HTML summary")
    _add_connection(report, "source")
    report.add_argument("-o", "--output", required=True, help="report folder")
    report.add_argument("--older-than", default="180D")
    report.add_argument("--keep-latest", type=int, default=2)
    report.set_defaults(func=cmd_report)

    stale_p = sub.add_parser("stale", help="digests a cleanup would delete, with the reason")
    _add_connection(stale_p, "source")
    _add_stale(stale_p)
    stale_p.add_argument("--keep", help="regex: tags to keep")
    stale_p.add_argument("--delete", help="regex: only tags matching this may go")
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
    delete.set_defaults(func=cmd_delete)
    return parser


_HINTS: list[tuple[type[DregError], str]] = [
    (CatalogUnavailable, "name the repositories with --repositories team/app other/app"),
    (AuthenticationError, "pass --user NAME with the password in $DREG_PASSWORD, or 'docker login' first"),
    (PermissionDenied, "these credentials may read but not do this; ask for more rights"),
    (TLSError, "pass --ca /path/to/ca.pem for a private CA (or --insecure, if you must)"),
    (TransportError, "check the URL and that the registry is up and reachable from here"),
]


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.func(args)
        return code
    except DregError as exc:
        print(f"dreg-frames: error: {exc}", file=sys.stderr)
        hint = next((text for cls, text in _HINTS if isinstance(exc, cls)), None)
        if hint:
            print(f"dreg-frames: hint: {hint}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
