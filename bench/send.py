"""Messages per second that `feeds send` delivers to an SMTP server on 127.0.0.1.

    python bench/send.py [--subscribers 2000] [--runs 3]

Builds the seeds, writes a list of N subscribers (a third each ko, en, both: 4/3 N messages),
starts aiosmtpd (from the test extra) in this process, and runs `feeds send` as a user would,
as a process, timing it and sampling the peak memory of its process tree. Each run uses a
fresh ledger. Prints one line per run and the median.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from run import measure  # noqa: E402

from tests.smtp_server import Recorder, SMTPServer  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--subscribers", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="feeds-send-bench-"))
    env = {
        **os.environ,
        "FEEDS_BASE_URL": "https://example.org/",
        "FEEDS_AUTHOR_EMAIL": "notes@example.org",
        "FEEDS_UNSUBSCRIBE_URL": "https://example.org/unsubscribe",
        "FEEDS_UNSUBSCRIBE_SECRET": "bench",
        "FEEDS_SMTP_HOST": "127.0.0.1",
        "FEEDS_SMTP_SECURITY": "none",
        "FEEDS_CACHE_DIR": str(work / "cache"),
    }
    shutil.copytree(ROOT / "seeds", work / "seeds")
    measure([sys.executable, "-m", "feeds", "build", "seeds", "--out", "dist"], work, env)
    lines = ["email,lang,name"]
    lines += [
        f"reader{n:05d}@example.com,{('ko', 'en', 'both')[n % 3]},Reader {n}"
        for n in range(args.subscribers)
    ]
    (work / "subscribers.csv").write_text("\n".join(lines) + "\n")
    rates = []
    for run in range(args.runs):
        recorder = Recorder()
        with SMTPServer(recorder) as server:
            ledger = work / f"ledger-{run}.sqlite"
            command = [sys.executable, "-m", "feeds", "send", "2024-11-07", "--yes"]
            command += ["--subscribers", "subscribers.csv", "--ledger", str(ledger)]
            found = measure(command, work, {**env, "FEEDS_SMTP_PORT": str(server.port)})
        messages = len(recorder.messages)
        rate = messages / float(found["wall"])  # type: ignore[arg-type]
        rates.append(rate)
        print(
            f"run {run + 1}: {messages} messages in {found['wall']:.2f} s = {rate:.0f}/s, "
            f"peak {int(found['peak_rss_kib']) / 1024:.0f} MiB"  # type: ignore[call-overload]
        )
    print(f"median: {statistics.median(rates):.0f} messages/s")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
