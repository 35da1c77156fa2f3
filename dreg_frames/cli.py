"""The ``dreg-frames`` command line."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

import pandas as pd

from .client.errors import DregError
from .client.mediatypes import short_name
from .client.registry import Registry
from .crawl import Crawl, crawl
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dreg-frames", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="start a local registry, push the sample images and report on it")
    demo.add_argument("--port", type=int, default=None, help="port on 127.0.0.1 (default: a free one)")
    demo.add_argument("--keep-running", action="store_true", help="keep the registry up until Ctrl-C")
    demo.set_defaults(func=cmd_demo)
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
