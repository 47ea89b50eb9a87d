"""The I/O floor of a built site: write the same files and bytes anew, and do nothing else.

    python bench/floor.py TREE DEST [--processes 2]

Reads every file under TREE into memory (not timed), then writes each to the same relative
path under DEST (made afresh; put it on the filesystem the builds write to) from --processes
forked processes, a share of the files each, and prints the seconds the writing took, from
the first folder made to the last file closed. Dirty pages are flushed before the clock starts.
No tool that writes these files can build them in less.
"""

from __future__ import annotations

import argparse
import os
import shutil
import time
from pathlib import Path


def read_tree(tree: Path) -> list[tuple[str, bytes]]:
    """Every file under tree, as (relative path, bytes), in a fixed order."""
    return [
        (path.relative_to(tree).as_posix(), path.read_bytes())
        for path in sorted(tree.rglob("*"))
        if path.is_file()
    ]


def write_share(files: list[tuple[str, bytes]], dest: Path) -> None:
    made: set[str] = set()
    for relative, data in files:
        folder, _ = os.path.split(relative)
        if folder not in made:
            os.makedirs(dest / folder, exist_ok=True)
            made.add(folder)
        with open(dest / relative, "wb") as file:
            file.write(data)


def write_floor(tree: Path, dest: Path, processes: int) -> float:
    """Seconds to write tree's files under dest from `processes` processes."""
    files = read_tree(tree)
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    os.sync()
    start = time.perf_counter()
    children = []
    for share in range(processes):
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                write_share(files[share::processes], dest)
                code = 0
            finally:
                os._exit(code)
        children.append(pid)
    failed = [pid for pid in children if os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) != 0]
    seconds = time.perf_counter() - start
    shutil.rmtree(dest)
    if failed:
        raise SystemExit("a writing process failed")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("tree", type=Path)
    parser.add_argument("dest", type=Path)
    parser.add_argument("--processes", type=int, default=2)
    args = parser.parse_args()
    print(f"{write_floor(args.tree, args.dest, args.processes):.3f}")


if __name__ == "__main__":
    main()
