"""Client instructions per request (run by hand): python -m tests.benchmarks.bench_instructions

CPU time per request on a shared VM drifts by a quarter within minutes (bench_crawl prints it, with
python-dxf's in the same pass to compare against); instructions executed do not. This runs the
crawl of bench_crawl's registry (fixed workers, frames included) in a child Python under valgrind's
callgrind, which counts the instructions the client process executes in user space (the kernel's
share of socket calls is not counted), and subtracts a child that only starts up (imports, the
registry URL read) the same way. ``--against REV`` measures a git revision of this repository the
same way (from a temporary worktree) and prints the ratio: the way to tell whether a change made
the client cheaper when timings cannot. Needs valgrind (Debian's ``valgrind``); a pass over the
200x20 registry takes about a minute and a half under callgrind.

    python -m tests.benchmarks.bench_instructions --storage /tmp/bench200 --against HEAD~1
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from dreg_frames import LocalRegistry

from .bench_crawl import seed

REPO = Path(__file__).resolve().parents[2]

# The child: the same imports whether it crawls or not, so their difference is the crawl's.
CHILD = """
import sys
sys.path.insert(0, sys.argv[1])
import pandas
import dreg_frames
assert dreg_frames.__file__.startswith(sys.argv[1]), dreg_frames.__file__
import importlib
from dreg_frames import Registry, crawl
importlib.import_module("dreg_frames.crawl.frames")
workers = int(sys.argv[3])
if workers:
    result = crawl(Registry.build_with_manual_client(sys.argv[2]), workers=workers, progress=False)
    print("requests", result.meta["requests"], "layers", len(result.layers))
"""


def instructions(root: Path, url: str, workers: int) -> tuple[int, int]:
    """(instructions, requests) of one child run under callgrind."""
    with tempfile.TemporaryDirectory(prefix="dreg-callgrind-") as tmp:
        out = Path(tmp) / "callgrind.out"
        script = Path(tmp) / "child.py"
        script.write_text(CHILD)
        run = subprocess.run(
            [
                "valgrind",
                "--tool=callgrind",
                f"--callgrind-out-file={out}",
                sys.executable,
                str(script),
                str(root),
                url,
                str(workers),
            ],
            capture_output=True,
            text=True,
            check=True,
        )
    refs = re.search(r"Collected : (\d+)", run.stderr)
    if refs is None:
        raise RuntimeError(f"callgrind printed no count:\n{run.stderr[-2000:]}")
    requests = re.search(r"requests (\d+)", run.stdout)
    return int(refs.group(1)), int(requests.group(1)) if requests else 0


def per_request(label: str, root: Path, url: str, workers: int, repeat: int) -> float:
    base, _ = instructions(root, url, 0)
    figures = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        total, requests = instructions(root, url, workers)
        figures.append((total - base) / requests)
        print(
            f"  {label:<28} {requests} requests, {(total - base) / 1e9:.3f} G instructions over start-up "
            f"({base / 1e9:.3f} G): {figures[-1] / 1000:.1f} k a request  [{time.perf_counter() - t0:.0f} s]",
            flush=True,
        )
    return min(figures)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repos", type=int, default=200)
    parser.add_argument("--tags", type=int, default=20)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--storage", help="keep the seeded registry here (reused when it exists)")
    parser.add_argument("--against", help="a git revision to measure the same way, e.g. HEAD~1")
    args = parser.parse_args()
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is needed: apt-get install valgrind")
    root = Path(args.storage) if args.storage else None
    fresh = root is None or not (root / "docker").exists()
    with LocalRegistry(root) as server, tempfile.TemporaryDirectory(prefix="dreg-rev-") as tmp:
        if fresh:
            seed(server, args.repos, args.tags)
        print(f"crawl with workers={args.workers} under callgrind ({server.url})")
        ours = per_request("this checkout", REPO, server.url, args.workers, args.repeat)
        if args.against:
            tree = Path(tmp) / "tree"
            subprocess.run(
                ["git", "-C", str(REPO), "worktree", "add", "--detach", str(tree), args.against],
                check=True,
                capture_output=True,
            )
            try:
                theirs = per_request(args.against, tree, server.url, args.workers, args.repeat)
            finally:
                subprocess.run(
                    ["git", "-C", str(REPO), "worktree", "remove", "--force", str(tree)],
                    check=False,
                    capture_output=True,
                )
            print(f"  this checkout / {args.against}: {ours / theirs:.3f} of the instructions a request")


if __name__ == "__main__":
    main()
