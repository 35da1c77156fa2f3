"""The ``dreg-frames`` command line."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

import pandas as pd

from .client.errors import DregError
from .client.mediatypes import short_name
from .client.reference import parse_reference
from .client.registry import Registry
from .crawl import Crawl, crawl
from .delete import execute, plan_delete
from .local_registry import LocalRegistry
from .sample import seed_registry

__all__ = ["main"]


def _human(size: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"


def print_holdings(result: Crawl) -> None:
    """Print every repository and tag the crawl found: digest, media type, platforms, size, created."""
    tags = result.tags
    for repository, group in tags.groupby("repository", observed=True, sort=True):
        print(repository)
        for row in group.to_dict("records"):
            created = row["created"].strftime("%Y-%m-%d") if not pd.isna(row["created"]) else "unknown"
            flag = " (suspect date)" if row["created_suspect"] else ""
            size = _human(float(row["size"])) if not pd.isna(row["size"]) else "?"
            print(
                f"  {row['tag']!s:<14} {str(row['digest'])[:19]}  {short_name(str(row['media_type'])):<13} "
                f"{row['platforms']!s:<28} {size:>10}  {created}{flag}"
            )
    print(
        f"\n{len(result.repositories)} repositories, {len(tags)} tags, {len(result.images)} images, "
        f"{result.layers['layer_digest'].nunique()} distinct layers; {len(result.errors)} errors"
    )


def cmd_demo(args: argparse.Namespace) -> int:
    local = LocalRegistry(port=args.port)
    local.start()
    try:
        registry = Registry.build_with_manual_client(local.url)
        started = time.monotonic()
        seeded = seed_registry(registry)
        print(f"local registry at {local.url} (pid {local.pid}), storage {local.storage}")
        print(f"pushed {len(seeded)} sample images in {time.monotonic() - started:.1f}s\n")
        print_holdings(crawl(registry, progress=False))
        if args.keep_running:
            print(f"\nregistry keeps running at {local.url}; Ctrl-C stops it")
            try:
                while True:
                    time.sleep(3600)
            except KeyboardInterrupt:
                pass
    finally:
        local.cleanup()
    return 0


def _registry(args: argparse.Namespace) -> Registry:
    verify: bool | str = args.ca if getattr(args, "ca", None) else not getattr(args, "insecure", False)
    return Registry.build_with_manual_client(args.url, verify=verify)


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
    print(f"  garbage collection would free: {_human(float(row['reclaimable_bytes'] or 0))}")
    for warning in row["warnings"]:
        print(f"  warning: {warning}")
    done = execute(registry, plan, dry_run=not args.yes, audit_log=args.audit_log).iloc[0]
    print(f"  outcome: {done['outcome']}" + (f" ({done['error']})" if done["error"] else ""))
    if done["outcome"] == "dry run":
        print("  nothing changed; pass --yes to delete")
    return 0 if done["outcome"] in ("deleted", "dry run") else 1


def _add_connection(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("url", help="registry URL, e.g. https://registry.example.com")
    parser.add_argument("--ca", help="CA bundle (PEM) to verify the registry's certificate")
    parser.add_argument("--insecure", action="store_true", help="do not verify TLS certificates")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dreg-frames", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="start a local registry, push the sample images and report on it")
    demo.add_argument("--port", type=int, default=None, help="port on 127.0.0.1 (default: a free one)")
    demo.add_argument("--keep-running", action="store_true", help="keep the registry up until Ctrl-C")
    demo.set_defaults(func=cmd_demo)

    delete = sub.add_parser("delete", help="delete one manifest by digest, after showing every tag that goes")
    _add_connection(delete)
    delete.add_argument("reference", help="REPOSITORY@sha256:...")
    mode = delete.add_mutually_exclusive_group()
    mode.add_argument("--dry-run", action="store_true", default=True, help="only log what would go (default)")
    mode.add_argument("--yes", action="store_true", help="really delete")
    delete.add_argument("--audit-log", default="audit.csv", help="append-only CSV log (default: audit.csv)")
    delete.set_defaults(func=cmd_delete)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.func(args)
        return code
    except DregError as exc:
        print(f"dreg-frames: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
