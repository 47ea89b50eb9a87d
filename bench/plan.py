"""Planning alone: key every job of a built archive, render none, and hash the keys.

    python bench/plan.py SRC OUT [--runs 3]

Run where the build's cache is (the folder `feeds build SRC --out OUT` ran in). Loads the
archive as a build does, then plans --runs times in this process with a one-process pool
(which renders a job only when its result is asked for, and nothing asks) and a fixed salt
instead of the code's, so that every job counts as one to render and two versions of feeds
give comparable keys. Prints the seconds of each load and plan, and a hash of every key
(sorted: the order jobs run in changes no output): a change to planning that is meant to
leave the outputs as they were must leave that hash as it was.
"""

from __future__ import annotations

import argparse
import hashlib
import time
from pathlib import Path

from feeds.build import Build, no_collections
from feeds.cache import Cache
from feeds.config import load_settings
from feeds.pool import Pool
from feeds.publish import Dist

SALT = "bench/plan.py"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("src", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    settings, _ = load_settings(None, {})
    build = Build(args.src, args.out, settings, None)
    cache_dir = Path(settings.build.cache_dir)
    with no_collections(), Cache.open(cache_dir) as build.cache, Dist.open(build.out) as build.dist:
        inputs = build.fingerprint()
        pool = Pool(1)
        with build.dist.staging(build.cache, pool) as staging:
            start = time.perf_counter()
            archive, updates = build.load(inputs, pool)
            print(f"load {time.perf_counter() - start:.3f} s")
            for _ in range(args.runs):
                start = time.perf_counter()
                planned = build.plan(archive, updates, SALT, staging, pool)
                print(f"plan {time.perf_counter() - start:.3f} s")
            keys = "\n".join(sorted(key for key, _ in planned.jobs)).encode()
            print(
                f"{len(planned.jobs)} keys, {len(planned.items)} feed items, keys hash "
                f"{hashlib.sha256(keys).hexdigest()[:16]}"
            )


if __name__ == "__main__":
    main()
