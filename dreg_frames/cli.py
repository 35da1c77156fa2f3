"""The ``dreg-frames`` command line."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

from .client.errors import DregError
from .client.manifests import ImageIndex, Manifest
from .client.mediatypes import short_name
from .client.registry import Registry
from .local_registry import LocalRegistry
from .sample import seed_registry

__all__ = ["main"]


def _human(size: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"


def print_holdings(registry: Registry) -> None:
    """Print every repository, tag, digest, media type, platforms and size the registry holds."""
    for name, repo in sorted(registry.repositories().items()):
        print(name)
        for tag in sorted(repo.tags()):
            manifest = repo.get_manifest(tag)
            if isinstance(manifest, ImageIndex):
                platforms = ",".join(manifest.platforms)
                size = sum(
                    m.size
                    for d in manifest.manifests
                    if isinstance(m := repo.get_manifest(d.digest), Manifest)
                )
            elif isinstance(manifest, Manifest):
                platforms = str(repo.get_config(manifest).platform)
                size = manifest.size
            else:
                platforms, size = "?", 0
            short = short_name(manifest.media_type)
            print(f"  {tag:<14} {manifest.digest[:19]}  {short:<13} {platforms:<28} {_human(size):>10}")


def cmd_demo(args: argparse.Namespace) -> int:
    local = LocalRegistry(port=args.port)
    local.start()
    try:
        registry = Registry.build_with_manual_client(local.url)
        started = time.monotonic()
        seeded = seed_registry(registry)
        print(f"local registry at {local.url} (pid {local.pid}), storage {local.storage}")
        print(f"pushed {len(seeded)} sample images in {time.monotonic() - started:.1f}s\n")
        print_holdings(registry)
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
