"""Benchmark `feeds build` on generated archives.

    python bench/run.py                      # 100, 500 and 2,000 digests, 3 runs each
    python bench/run.py --sizes 100 --runs 1 # a quick look

Each size gets a deterministic corpus (python -m feeds.corpus, seed 0). Each
scenario runs the real CLI in a fresh process and is measured from outside:
wall time, and the peak resident memory of the build process (getrusage of the
waited-for child). Writes bench/RESULTS.md and bench/results.json.

Scenarios: cold (empty dist/), no-change rebuild, one digest added, one note
edited, one template edited; plus files and bytes per kind and the build's own
per-stage timings. (The Pelican and Hugo comparison of the performance issue is
not here yet.)
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
import time
from importlib.metadata import version
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "bench" / "work"
STAGES = re.compile(r"(\w+) ([\d.]+)s")


def run_build(src: Path, out: Path) -> dict[str, object]:
    env = {
        **os.environ,
        "FEEDS_BASE_URL": "https://example.org/",
    }
    start = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "feeds", "build", str(src), "--out", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
        cwd=WORK,
    )
    stdout = process.stdout.read()  # type: ignore[union-attr]
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"feeds build failed on {src}")
    line = stdout.strip().splitlines()[-1]
    written = int(re.search(r"(\d+) written", line)[1])
    stages = {name: float(sec) for name, sec in STAGES.findall(line.split("(", 1)[1])}
    return {"wall": wall, "peak_rss_kib": usage.ru_maxrss, "written": written, "stages": stages}


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


def bench_size(size: int, runs: int) -> dict[str, object]:
    src, out = WORK / f"corpus-{size}", WORK / f"dist-{size}"
    shutil.rmtree(src, ignore_errors=True)
    subprocess.run(
        [sys.executable, "-m", "feeds.corpus", "--digests", str(size), "--out", str(src)],
        check=True,
        capture_output=True,
    )
    results: dict[str, list[dict[str, object]]] = {
        k: [] for k in ("cold", "no_change", "add_digest", "edit_note", "edit_template")
    }
    templates = WORK / "templates"
    for _ in range(runs):
        shutil.rmtree(out, ignore_errors=True)
        (src / ".feeds-state.json").unlink(missing_ok=True)
        results["cold"].append(run_build(src, out))
        results["no_change"].append(run_build(src, out))
        extra = src / "2100-01-01.txt"
        first = sorted(src.glob("*.txt"))[0].read_text(encoding="utf-8-sig")
        extra.write_text(re.sub(r"^\s*\d+년 \d+월 \d+일", "2100년 1월 1일", first))
        results["add_digest"].append(run_build(src, out))
        extra.write_text(extra.read_text().replace("#", "#edited-", 1))
        results["edit_note"].append(run_build(src, out))
        extra.unlink()
        run_build(src, out)
        shutil.rmtree(templates, ignore_errors=True)
        shutil.copytree(ROOT / "templates", templates)
        (templates / "_note.html").write_text((templates / "_note.html").read_text() + "\n")
        os.environ["FEEDS_TEMPLATES_DIR"] = str(templates)
        results["edit_template"].append(run_build(src, out))
        del os.environ["FEEDS_TEMPLATES_DIR"]
        run_build(src, out)
    return {
        "digests": size,
        "scenarios": {
            name: {
                "wall": summary([r["wall"] for r in rows]),
                "peak_rss_mib": max(r["peak_rss_kib"] for r in rows) / 1024,
                "written": rows[-1]["written"],
                "stages": rows[-1]["stages"],
            }
            for name, rows in results.items()
        },
        "output": kinds(out),
    }


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


def markdown(report: dict[str, object]) -> str:
    m = report["machine"]
    lines = [
        "# Benchmark results",
        "",
        f"Machine: {m['cores']} cores, {m['memory_gib']} GiB, Python {m['python']}; "
        + ", ".join(f"{k} {v}" for k, v in m["libraries"].items()),
        f"Command: `python bench/run.py --sizes {' '.join(str(s['digests']) for s in report['sizes'])} --runs {report['runs']}`",
        "",
        "| digests | scenario | wall median (min–max) s | peak RSS MiB | files written | stages (s) |",
        "| ---: | --- | --- | ---: | ---: | --- |",
    ]
    for size in report["sizes"]:
        for name, row in size["scenarios"].items():
            w = row["wall"]
            stages = ", ".join(f"{k} {v:.2f}" for k, v in row["stages"].items())
            lines.append(
                f"| {size['digests']} | {name} | {w['median']:.2f} ({w['min']:.2f}–{w['max']:.2f}) | {row['peak_rss_mib']:.0f} | {row['written']} | {stages} |"
            )
    lines += ["", "| digests | kind | files | MiB |", "| ---: | --- | ---: | ---: |"]
    for size in report["sizes"]:
        for kind, entry in sorted(size["output"].items()):
            lines.append(
                f"| {size['digests']} | {kind} | {entry['files']} | {entry['bytes'] / 2**20:.1f} |"
            )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 500, 2000])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    report = {
        "machine": machine(),
        "runs": args.runs,
        "sizes": [bench_size(size, args.runs) for size in args.sizes],
    }
    (ROOT / "bench" / "results.json").write_text(json.dumps(report, indent=2) + "\n")
    (ROOT / "bench" / "RESULTS.md").write_text(markdown(report))
    print(markdown(report))


if __name__ == "__main__":
    main()
