"""Analysis benchmark (run by hand): python -m tests.benchmarks.bench_analysis [--rows 1000000]

Builds a synthetic crawl of about ROWS layer rows (through the real records -> frames path), then
times each helper against the same aggregation written in SQL for DuckDB over the same DataFrame,
in one run, best of three. Prints seconds and the ratio ours / DuckDB (target: within 2x).
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

import duckdb
import pandas as pd

from dreg_frames import duplicates, reclaimable, stale, storage_usage
from dreg_frames.crawl.frames import build_frames
from dreg_frames.crawl.records import ImageRecord, TagRecord

NOW = datetime(2026, 11, 27, tzinfo=timezone.utc)


def synthetic(rows: int, layers_per_image: int = 20) -> dict[str, pd.DataFrame]:
    rng = random.Random(7)
    images = rows // layers_per_image
    tags_per_repo = 50
    bases = [f"sha256:{i:064x}" for i in range(300)]
    records = []
    for n in range(images):
        repo = f"team{n % 40}/service{n // tags_per_repo:05d}"
        # a tenth of tags are aliases of the previous build: one digest, two tags
        alias = n % 10 == 9
        build = n - 1 if alias else n
        digest = f"sha256:{build + 10**6:064x}"
        shared = [bases[(build * 7 + k) % len(bases)] for k in range(layers_per_image - 5)]
        own = [f"sha256:{(build + 1) * 100 + k + 10**9:064x}" for k in range(5)]
        layers = tuple((dg, 1000 + (int(dg[-6:], 16) % 50000), "l", ()) for dg in shared + own)
        day = f"20{20 + build % 7}-{1 + build % 12:02d}-{1 + build % 28:02d}"
        created = f"{day}T00:00:00.{rng.randrange(10**9):09d}Z"
        image = ImageRecord(
            digest, "m", "linux/amd64", f"sha256:{build + 10**7:064x}", created, layers, 900, 700
        )
        records.append(
            TagRecord(repo, "latest" if n % tags_per_repo == 0 else f"v{n}", digest, "m", (image,), 700)
        )
    return build_frames("bench", records, [], [], NOW)


def best(fn: Callable[[], Any], repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


SQL_USAGE = """
WITH refs AS (
  SELECT DISTINCT repository, tag, blob, size FROM (
    SELECT repository::VARCHAR repository, tag::VARCHAR tag, layer_digest::VARCHAR blob, layer_size size
    FROM layers
    UNION ALL SELECT repository, tag, config_digest, config_size FROM layers WHERE layer_index = 0
    UNION ALL SELECT repository, tag, manifest_digest, manifest_size FROM layers WHERE layer_index = 0)),
distinct_blobs AS (SELECT DISTINCT repository, blob, size FROM refs),
owners AS (SELECT blob, count(*) n FROM distinct_blobs GROUP BY blob)
SELECT d.repository, l.logical, sum(d.size) stored, sum(CASE WHEN o.n = 1 THEN d.size ELSE 0 END) exclusive
FROM distinct_blobs d JOIN owners o USING (blob)
JOIN (SELECT repository, sum(size) logical FROM refs GROUP BY repository) l USING (repository)
GROUP BY d.repository, l.logical
"""

SQL_STALE = """
WITH t AS (
  SELECT repository::VARCHAR repository, digest::VARCHAR digest, list(DISTINCT tag::VARCHAR) tags,
         max(created) created,
         bool_or(tag::VARCHAR = 'latest') has_latest, bool_or(NOT created_suspect) trusted
  FROM images GROUP BY 1, 2),
r AS (SELECT *, row_number() OVER (PARTITION BY repository ORDER BY created DESC) rn
      FROM t WHERE NOT has_latest AND trusted)
SELECT repository, digest, tags, created FROM r
WHERE rn > 3 AND created < TIMESTAMPTZ '2026-11-27 00:00:00+00' - INTERVAL 90 DAY
"""

SQL_DUPLICATES = """
SELECT digest::VARCHAR digest, list(repository::VARCHAR || ':' || tag::VARCHAR ORDER BY 1) refs, count(*) n
FROM (SELECT DISTINCT repository, tag, digest FROM images) GROUP BY 1 HAVING count(*) > 1
"""

SQL_RECLAIM = """
WITH refs AS (
  SELECT repository::VARCHAR repository, digest::VARCHAR digest, layer_digest::VARCHAR blob, layer_size size
  FROM layers
  UNION ALL SELECT repository, digest, config_digest, config_size FROM layers WHERE layer_index = 0
  UNION ALL SELECT repository, digest, manifest_digest, manifest_size FROM layers WHERE layer_index = 0),
gone AS (SELECT r.* FROM refs r SEMI JOIN victims v ON r.repository = v.repository AND r.digest = v.digest),
kept AS (SELECT r.blob FROM refs r ANTI JOIN victims v ON r.repository = v.repository AND r.digest = v.digest)
SELECT blob, any_value(size) size FROM gone WHERE blob NOT IN (SELECT blob FROM kept) GROUP BY blob
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    t0 = time.perf_counter()
    frames = synthetic(args.rows)
    layers, images = frames["layers"], frames["images"]
    print(
        f"synthetic crawl: {len(layers)} layer rows, {len(images)} images, "
        f"built in {time.perf_counter() - t0:.1f}s;"
        f" layers frame {layers.memory_usage(deep=True).sum() / len(layers):.0f} bytes/row"
    )
    victims = stale(images, now=NOW)[["repository", "digest"]].astype(str)
    con = duckdb.connect()
    con.register("layers", layers)
    con.register("images", images)
    con.register("victims", victims)
    cases: list[tuple[str, Callable[[], Any], str]] = [
        ("storage_usage", lambda: storage_usage(layers), SQL_USAGE),
        ("stale", lambda: stale(images, now=NOW), SQL_STALE),
        ("duplicates", lambda: duplicates(images), SQL_DUPLICATES),
        ("reclaimable", lambda: reclaimable(layers, victims), SQL_RECLAIM),
    ]
    print(f"{'helper':<15} {'ours s':>8} {'duckdb s':>9} {'ratio':>6}")
    for name, ours, sql in cases:
        mine = best(ours)
        theirs = best(lambda sql=sql: con.execute(sql).df())
        print(f"{name:<15} {mine:>8.3f} {theirs:>9.3f} {mine / theirs:>6.2f}", flush=True)
    # the answers agree, so the comparison is of the same work
    ours_total = storage_usage(layers).iloc[:-1].set_index("repository")["stored_bytes"].sum()
    sql_total = con.execute(SQL_USAGE).df()["stored"].sum()
    assert int(ours_total) == int(sql_total), (ours_total, sql_total)
    assert len(stale(images, now=NOW)) == len(con.execute(SQL_STALE).df())
    assert reclaimable(layers, victims)["size"].sum() == con.execute(SQL_RECLAIM).df()["size"].sum()


if __name__ == "__main__":
    main()
