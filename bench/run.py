"""Benchmark `feeds build` on generated archives, side by side with Pelican and Hugo.

    python bench/run.py                       # 100, 500, 2,000 digests, 3 runs; Pelican and Hugo at 2,000
    python bench/run.py --sizes 10000 --runs 1 --edits 1 --compare-size 0   # then: the large archive
    python bench/run.py --sizes 100 --runs 1 --compare-size 0   # a quick look

Each size gets a deterministic corpus (python -m feeds.corpus, seed 0). Each scenario
runs the real CLI in a fresh process, after a `sync`, and is measured from outside: wall
time, and the peak resident memory of the whole process tree (worker processes included),
sampled from /proc. Scenarios: cold (a first build: no dist/, no spare tree, empty cache),
no-change rebuild, one digest added, one note edited and the next day's digest added
(--edits rounds per run, both digests removed after each), one template edited; plus files
and bytes per kind, the build's own per-stage timings, and `feeds check` per 1,000 digests.
With --compare-size, the same corpus is built by Pelican and Hugo (installed into
bench/.venv, not as dependencies of feeds) as one post per note with per-tag feeds, in the
same run, and the I/O floor of both outputs is measured (bench/floor.py). Writes
bench/results.json, where a run replaces the sizes it measured and keeps the others (so
10,000 digests can run apart, once), and bench/RESULTS.md from all of it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import threading
import time
from importlib.metadata import version
from pathlib import Path

import compare

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "bench" / "work"
STAGES = re.compile(r"(\w+) ([\d.]+)s")


_PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024


def _tree_rss_kib(root: int) -> int:
    """Resident memory of a process and all its descendants, from /proc.

    The tree is walked through each thread's list of children: a few small reads per sample,
    where scanning every process on the machine took over a millisecond of the CPU the
    measured build competes for. Without those lists, every process is scanned.

    A child between fork and exec (Python's subprocess uses vfork) has its parent's memory,
    not memory of its own: /proc shows it the parent's, and counting them again put a build's
    process in the sum twice whenever a sample fell as it started Pagefind. A child with its
    parent's mappings (statm's sizes but the resident one, which moves between two reads) is
    not counted; nor, then, a worker just forked, whose pages are all its parent's too.
    """
    if not os.path.exists(f"/proc/{root}/task/{root}/children"):
        return _tree_rss_kib_scan(root)
    total, stack = 0, [(root, [""])]
    while stack:
        pid, parents = stack.pop()
        try:
            with open(f"/proc/{pid}/statm") as f:
                numbers = f.read().split()
            tasks = os.listdir(f"/proc/{pid}/task")
        except OSError:  # it ended meanwhile
            continue
        if numbers[:1] + numbers[2:] != parents[:1] + parents[2:]:
            total += int(numbers[1]) * _PAGE_KIB
        for task in tasks:
            try:
                with open(f"/proc/{pid}/task/{task}/children") as f:
                    stack += ((int(child), numbers) for child in f.read().split())
            except (OSError, ValueError):  # that thread ended meanwhile
                continue
    return total


def _tree_rss_kib_scan(root: int) -> int:
    children: dict[int, list[int]] = {}
    numbers: dict[int, tuple[str, str]] = {}  # virtual size, resident pages
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid = int(entry)
        children.setdefault(int(fields[1]), []).append(pid)
        numbers[pid] = (fields[20], fields[21])
    total, stack = 0, [(root, ("", ""))]
    while stack:
        pid, parents = stack.pop()
        found = numbers.get(pid, ("", "0"))
        if found[0] != parents[0]:  # as above: a child not yet exec-ed shares its parent's
            total += int(found[1]) * _PAGE_KIB
        stack += ((child, found) for child in children.get(pid, []))
    return total


def _environment(extra: dict[str, str] | None = None) -> dict[str, str]:
    """As a user's shell has it: Python may cache bytecode (some sandboxes turn that off)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    return {**env, **(extra or {})}


def measure(command: list[str], cwd: Path, env: dict[str, str] | None = None) -> dict[str, object]:
    """Run a command; wall time and the peak resident memory of its whole process tree.

    The tree is sampled every 20 ms; the process's own peak (getrusage) is a floor. Dirty
    pages are flushed first: the kernel writes a build's files back up to 30 s later, and that
    write-back must not land in the next measurement (it made one-digest builds vary 2-3 s).
    """
    os.sync()
    start = time.perf_counter()
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env or _environment(),
        cwd=cwd,
    )
    peak, done = 0, threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, _tree_rss_kib(process.pid))
            done.wait(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    stdout = process.stdout.read()  # type: ignore[union-attr]
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    done.set()
    sampler.join()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"failed: {' '.join(command)}")
    # wait4 on Linux counts the descendants the process reaped (workers, Pagefind) too.
    cpu = usage.ru_utime + usage.ru_stime
    return {"wall": wall, "cpu": cpu, "peak_rss_kib": max(peak, usage.ru_maxrss), "stdout": stdout}


def run_build(src: Path, out: Path) -> dict[str, object]:
    env = _environment({"FEEDS_BASE_URL": "https://example.org/"})
    command = [sys.executable, "-m", "feeds", "build", str(src), "--out", str(out)]
    result = measure(command, WORK, env)
    said = str(result.pop("stdout")).strip().splitlines()
    line = next(x for x in reversed(said) if x.startswith("Built "))  # not "Updated … state"
    result["written"] = int(re.search(r"(\d+) written", line)[1])
    result["rendered"] = int(re.search(r"rendered (\d+)", line)[1])
    result["stages"] = {name: float(sec) for name, sec in STAGES.findall(line.rsplit(";", 1)[1])}
    return result


def time_check(src: Path) -> float:
    """Seconds `feeds check` takes per 1,000 digests (best of three, whole process)."""
    files = len(list(src.glob("*.txt")))
    best = min(
        measure([sys.executable, "-m", "feeds", "check", str(src)], WORK)["wall"] for _ in range(3)
    )
    return best * 1000 / files


def kinds(out: Path) -> dict[str, dict[str, int]]:
    table: dict[str, dict[str, int]] = {}
    for path in out.rglob("*"):
        if path.is_file():
            rel = path.relative_to(out).as_posix()
            kind = (
                "newsletters"
                if rel.startswith("newsletters/")
                else "feeds"
                if path.suffix in (".xml", ".json", ".opml") and path.name != "sitemap.xml"
                else "pages"
            )
            entry = table.setdefault(kind, {"files": 0, "bytes": 0})
            entry["files"] += 1
            entry["bytes"] += path.stat().st_size
    return table


def summary(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def bench_size(size: int, runs: int, edits: int, compare: bool) -> dict[str, object]:
    src, out = WORK / f"corpus-{size}", WORK / f"dist-{size}"
    shutil.rmtree(src, ignore_errors=True)
    subprocess.run(
        [sys.executable, "-m", "feeds.corpus", "--digests", str(size), "--out", str(src)],
        check=True,
        capture_output=True,
    )
    results: dict[str, list[dict[str, object]]] = {
        k: [] for k in ("cold", "no_change", "add_digest", "edit_note", "add_next", "edit_template")
    }
    templates = WORK / "templates"
    for _ in range(runs):
        # A first build: no dist/, no spare tree beside it (.dist-N.spare), no cache.
        for leftover in (out, out.with_name(f".{out.name}.spare"), WORK / ".feeds-cache"):
            shutil.rmtree(leftover, ignore_errors=True)
        (src / ".feeds-state.json").unlink(missing_ok=True)
        results["cold"].append(run_build(src, out))
        results["no_change"].append(run_build(src, out))
        extra = src / "2100-01-01.txt"
        first = sorted(src.glob("*.txt"))[0].read_text(encoding="utf-8-sig")
        # Each round adds the same digest anew: removing it dropped its renders from the cache.
        for _ in range(edits):
            extra.write_text(re.sub(r"^\s*\d+년 \d+월 \d+일", "2100년 1월 1일", first))
            results["add_digest"].append(run_build(src, out))
            extra.write_text(extra.read_text().replace("#", "#edited-", 1))
            results["edit_note"].append(run_build(src, out))
            # The next day's digest: at a round size the first one merges search shards
            # (once in 100 or 400 digests, feeds.search), the next one is a common day's.
            following = src / "2100-01-02.txt"
            following.write_text(re.sub(r"^\s*\d+년 \d+월 \d+일", "2100년 1월 2일", first))
            results["add_next"].append(run_build(src, out))
            extra.unlink()
            following.unlink()
            run_build(src, out)
        shutil.rmtree(templates, ignore_errors=True)
        shutil.copytree(ROOT / "templates", templates)
        (templates / "_note.html").write_text((templates / "_note.html").read_text() + "\n")
        os.environ["FEEDS_TEMPLATES_DIR"] = str(templates)
        results["edit_template"].append(run_build(src, out))
        del os.environ["FEEDS_TEMPLATES_DIR"]
        run_build(src, out)
    report: dict[str, object] = {
        "digests": size,
        "runs": runs,
        "edits": edits,
        "date": time.strftime("%Y-%m-%d"),
        "notes": _notes(src),
        "scenarios": {
            name: {
                "wall": summary([r["wall"] for r in rows]),
                "cpu": summary([r["cpu"] for r in rows]),
                "peak_rss_mib": max(r["peak_rss_kib"] for r in rows) / 1024,
                "written": rows[-1]["written"],
                "rendered": rows[-1]["rendered"],
                "stages": rows[-1]["stages"],
            }
            for name, rows in results.items()
        },
        "output": kinds(out),
        "check_seconds_per_1000": time_check(src),
    }
    if compare:
        report["compare"] = compare_tools(src, runs)
        report["floor"] = write_floors({"feeds": out, "hugo": WORK / "hugo-site" / "public"}, runs)
    return report


def _notes(src: Path) -> int:
    sys.path.insert(0, str(ROOT))
    from feeds.archive import summarize_archive

    return summarize_archive(src, workers=1).notes


def compare_tools(src: Path, runs: int) -> dict[str, object]:
    """Pelican and Hugo on the same archive (one post per note, per-tag feeds): cold builds."""
    bin_dir = compare.ensure_tools()
    found: dict[str, object] = {"versions": compare.tool_versions(bin_dir)}
    for name, write, command, output in (
        ("hugo", compare.write_hugo_site, compare.hugo_command, "public"),
        ("pelican", compare.write_pelican_site, compare.pelican_command, "output"),
    ):
        site = WORK / f"{name}-site"
        posts = write(src, site)
        rows = []
        for _ in range(runs):
            shutil.rmtree(site / output, ignore_errors=True)
            shutil.rmtree(site / "resources", ignore_errors=True)
            rows.append(measure(command(bin_dir, site), site))
        files = [p for p in (site / output).rglob("*") if p.is_file()]
        found[name] = {
            "posts": posts,
            "wall": summary([r["wall"] for r in rows]),
            "cpu": summary([r["cpu"] for r in rows]),
            "peak_rss_mib": max(r["peak_rss_kib"] for r in rows) / 1024,
            "files": len(files),
            "mib": sum(p.stat().st_size for p in files) / 2**20,
        }
    return found


def write_floors(trees: dict[str, Path], runs: int) -> dict[str, dict[str, float]]:
    """Per tree, the seconds that writing its files and nothing else takes (bench/floor.py),
    from 2 processes on the filesystem the builds write to; the trees take turns."""
    seconds: dict[str, list[float]] = {name: [] for name in trees}
    for _ in range(runs):
        for name, tree in trees.items():
            floor = [sys.executable, str(ROOT / "bench" / "floor.py"), "--processes", "2"]
            done = subprocess.run(
                [*floor, str(tree), str(WORK / "floor")], check=True, capture_output=True, text=True
            )
            seconds[name].append(float(done.stdout))
    return {name: summary(values) for name, values in seconds.items()}


def machine() -> dict[str, object]:
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {
        "cores": os.cpu_count(),
        "memory_gib": round(memory, 1),
        "python": platform.python_version(),
        "libraries": {
            name: version(name) for name in ("feeds", "feedgen", "mjml-python", "jinja2", "click")
        },
    }


def _wall(w: dict[str, float]) -> str:
    return f"{w['median']:.2f} ({w['min']:.2f}–{w['max']:.2f})"


def _commands(report: dict[str, object]) -> list[str]:
    """One line per invocation that measured some of the sizes (each size says how it ran)."""
    runs: dict[tuple[int, int, str], list[str]] = {}
    for size in report["sizes"]:
        key = (size["runs"], size["edits"], size["date"])
        runs.setdefault(key, []).append(str(size["digests"]))
    return [
        f"- `python bench/run.py --sizes {' '.join(sizes)} --runs {r} --edits {e}` ({day}): "
        f"{r} run(s) per scenario, {r * e} of each digest added and note edited"
        for (r, e, day), sizes in runs.items()
    ]


def markdown(report: dict[str, object]) -> str:
    m = report["machine"]
    lines = [
        "# Benchmark results",
        "",
        f"Machine: {m['cores']} cores, {m['memory_gib']} GiB, Python {m['python']}; "
        + ", ".join(f"{k} {v}" for k, v in m["libraries"].items()),
        "",
        "Commands (median, min–max; CPU s is user + system time of the whole process tree; "
        "memory is the peak of the whole process tree; every run starts after a `sync`):",
        "",
        *_commands(report),
        "",
        "| digests | scenario | wall s | CPU s | peak RSS MiB | files written | jobs rendered | stages (s, summed over workers) |",
        "| ---: | --- | --- | --- | ---: | ---: | ---: | --- |",
    ]
    for size in report["sizes"]:
        for name, row in size["scenarios"].items():
            stages = ", ".join(f"{k} {v:.2f}" for k, v in row["stages"].items())
            lines.append(
                f"| {size['digests']} | {name} | {_wall(row['wall'])} | {_wall(row['cpu'])} "
                f"| {row['peak_rss_mib']:.0f} "
                f"| {row['written']} | {row['rendered']} | {stages} |"
            )
    lines += ["", "| digests | kind | files | MiB |", "| ---: | --- | ---: | ---: |"]
    for size in report["sizes"]:
        for kind, entry in sorted(size["output"].items()):
            lines.append(
                f"| {size['digests']} | {kind} | {entry['files']} | {entry['bytes'] / 2**20:.1f} |"
            )
    lines += ["", "`feeds check`, seconds per 1,000 digests (best of 3, whole process):", ""]
    for size in report["sizes"]:
        lines.append(f"- {size['digests']} digests: {size['check_seconds_per_1000']:.2f} s")
    for size in report["sizes"]:
        found = size.get("compare")
        if not found:
            continue
        cold = size["scenarios"]["cold"]
        versions = found["versions"]
        lines += [
            "",
            f"## Side by side, {size['digests']} digests (same run, same machine)",
            "",
            f"{versions['hugo']} and {versions['pelican']} build the same notes as one post "
            "each with per-tag feeds (bench/compare.py); cold builds.",
            "",
            "| tool | posts | wall s | CPU s | peak RSS MiB | files | MiB | feeds ÷ tool, wall | feeds ÷ tool, CPU |",
            "| --- | ---: | --- | --- | ---: | ---: | ---: | ---: | ---: |",
        ]
        for name in ("hugo", "pelican"):
            row = found[name]
            ratio = cold["wall"]["median"] / row["wall"]["median"]
            cpu = row.get("cpu")
            cpu_text = _wall(cpu) if cpu else "–"
            cpu_ratio = f"{cold['cpu']['median'] / cpu['median']:.2f}" if cpu else "–"
            lines.append(
                f"| {name} | {row['posts']} | {_wall(row['wall'])} | {cpu_text} "
                f"| {row['peak_rss_mib']:.0f} | {row['files']} | {row['mib']:.0f} | {ratio:.2f} "
                f"| {cpu_ratio} |"
            )
        out = size["output"]
        lines.append(
            f"| feeds (cold) | {size['notes']} notes | {_wall(cold['wall'])} | "
            f"{_wall(cold['cpu'])} | {cold['peak_rss_mib']:.0f} | "
            f"{sum(e['files'] for e in out.values())} | "
            f"{sum(e['bytes'] for e in out.values()) / 2**20:.0f} | 1.00 | 1.00 |"
        )
        floor = size.get("floor")
        if floor:
            target = found["hugo"]["wall"]["median"] / 2
            share = floor["feeds"]["median"] / cold["wall"]["median"]
            bound = "disk-bound" if share > 0.25 else "CPU-bound"
            lines += [
                "",
                "I/O floor: writing the same files and bytes and nothing else, from 2 processes "
                "on the same filesystem (bench/floor.py), in the same run:",
                "",
                f"- feeds' output: {_wall(floor['feeds'])} s, "
                f"{floor['feeds']['median'] / target:.0%} of the cold target "
                f"(half of Hugo's median, {target:.2f} s), {share:.0%} of feeds' cold build: "
                f"this run was **{bound}** (disk-bound: the floor is over a quarter of the build)",
                f"- Hugo's output: {_wall(floor['hugo'])} s",
            ]
    by_size = {s["digests"]: s for s in report["sizes"]}
    if 500 in by_size and 2000 in by_size:
        ratio = (
            by_size[2000]["scenarios"]["cold"]["wall"]["median"]
            / by_size[500]["scenarios"]["cold"]["wall"]["median"]
        )
        lines += ["", f"Growth: the 2,000-digest cold build takes {ratio:.2f}× the 500-digest one."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 500, 2000])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--edits",
        type=int,
        default=3,
        help="Rounds of one digest added, one note edited (and the digest removed) per run.",
    )
    parser.add_argument(
        "--compare-size",
        type=int,
        default=2000,
        help="Also build this size with Pelican and Hugo (0: no comparison).",
    )
    args = parser.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    # Compile feeds once, as installing it does, so no measured run pays for that.
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "feeds")], check=True)
    measured = [
        bench_size(size, args.runs, args.edits, size == args.compare_size) for size in args.sizes
    ]
    results = ROOT / "bench" / "results.json"
    kept = json.loads(results.read_text())["sizes"] if results.exists() else []
    by_size = {s["digests"]: s for s in kept if "runs" in s} | {s["digests"]: s for s in measured}
    report = {"machine": machine(), "sizes": [by_size[k] for k in sorted(by_size)]}
    results.write_text(json.dumps(report, indent=2) + "\n")
    (ROOT / "bench" / "RESULTS.md").write_text(markdown(report))
    print(markdown(report))


if __name__ == "__main__":
    main()
