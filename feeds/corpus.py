"""A deterministic generator of digest archives in the samples' style, for tests and benchmarks.

    python -m feeds.corpus --digests 2000 --out /tmp/corpus --seed 0

The same arguments always write the same bytes. Days carry 5–20 notes, about
one day in ten comes in two parts, tags follow a long-tail distribution over
300 names, commentary is short or long, and a share of the files exercise the
parser's tolerances (BOM, CRLF, NFD, blank lines, stray spaces).
"""

from __future__ import annotations

import argparse
import random
import unicodedata
from datetime import date, timedelta
from pathlib import Path

from .model import Digest

_EN_WORDS = [
    "model",
    "training",
    "attention",
    "layer",
    "token",
    "scaling",
    "data",
    "loss",
    "gradient",
    "reasoning",
    "language",
    "transformer",
    "diffusion",
    "benchmark",
    "inference",
    "memory",
    "context",
    "sparse",
    "dense",
    "expert",
    "policy",
    "reward",
    "alignment",
    "sampling",
    "decoding",
    "objective",
    "representation",
    "feature",
    "circuit",
    "head",
    "optimizer",
    "learning",
    "rate",
    "schedule",
    "parameter",
    "efficient",
    "kernel",
    "hardware",
    "quantization",
    "distillation",
    "synthetic",
    "evaluation",
    "retrieval",
    "long",
    "short",
    "video",
    "image",
    "audio",
    "text",
    "code",
    "math",
    "proof",
    "search",
    "agent",
    "planning",
    "robust",
    "generalization",
    "analysis",
    "method",
    "results",
    "show",
]
_KO_WORDS = [
    "모델",
    "학습",
    "어텐션",
    "레이어",
    "토큰",
    "스케일링",
    "데이터",
    "손실",
    "그래디언트",
    "추론",
    "언어",
    "트랜스포머",
    "확산",
    "벤치마크",
    "메모리",
    "컨텍스트",
    "희소",
    "전문가",
    "정책",
    "보상",
    "정렬",
    "샘플링",
    "디코딩",
    "목표",
    "표현",
    "특징",
    "회로",
    "헤드",
    "옵티마이저",
    "파라미터",
    "효율",
    "커널",
    "양자화",
    "증류",
    "합성",
    "평가",
    "검색",
    "비디오",
    "이미지",
    "코드",
    "수학",
    "증명",
    "에이전트",
    "계획",
    "일반화",
    "분석",
    "방법",
    "결과",
]
_KO_ENDINGS = (
    "입니다.",
    "군요.",
    "네요.",
    "하는 방법.",
    "에 대한 분석.",
    "라는 결과.",
    "같습니다.",
)
_FIRST = [
    "Ada",
    "Bo",
    "Chen",
    "Daria",
    "Emil",
    "Fatima",
    "Gabriel",
    "Hana",
    "Ivan",
    "Jie",
    "Kexun",
    "Lena",
    "Marton",
    "Nikhil",
    "Olga",
    "Paulo",
    "Qinghua",
    "René",
    "Simran",
    "Tomer",
    "Uma",
    "Vera",
    "Wei",
    "Xiao",
    "Yuhan",
    "Zoë",
    "Juan",
    "Christopher",
]
_LAST = [
    "Kim",
    "Lee",
    "Park",
    "Wang",
    "Zhang",
    "Liu",
    "Pérez",
    "Ré",
    "Müller",
    "O'Neil",
    "Smith-Jones",
    "Dubois",
    "Ivanova",
    "Tanaka",
    "Singh",
    "García",
    "Rossi",
    "Nowak",
    "Haddad",
    "Okafor",
    "Lindqvist",
    "D'Souza",
    "Holderrieth",
    "Jaakkola",
]
_TAG_STEMS = [
    "transformer",
    "diffusion",
    "reasoning",
    "long-context",
    "moe",
    "optimizer",
    "alignment",
    "benchmark",
    "tokenizer",
    "vq",
    "llm",
    "efficiency",
    "math",
    "search",
    "agent",
    "rl",
    "video-generation",
    "image-generation",
    "speech",
    "code",
    "retrieval",
    "synthetic-data",
    "pretraining",
    "finetuning",
    "quantization",
    "distillation",
    "positional-encoding",
    "mechanistic-interpretation",
    "scaling-law",
    "regularization",
    "multimodal",
    "safety",
    "evaluation",
    "inference",
    "kernel",
    "memory",
    "activation",
    "normalization",
    "state-space",
    "robotics",
]
_TAG_QUALIFIERS = ("", "theory", "survey", "dataset", "analysis", "method", "benchmark", "scaling")
_HANGUL_TAGS = ("한국어", "리뷰", "튜토리얼", "재현")


def _tags(count: int = 300) -> list[str]:
    names = list(_HANGUL_TAGS)
    for qualifier in _TAG_QUALIFIERS:
        for stem in _TAG_STEMS:
            name = f"{stem}-{qualifier}" if qualifier else stem
            if name not in names:
                names.append(name)
            if len(names) == count:
                return names
    return names


def _sentence(rng: random.Random, words: tuple[str, ...] | list[str], n: int) -> str:
    text = " ".join(rng.choice(words) for _ in range(n))
    return text[0].upper() + text[1:]


def _english(rng: random.Random, sentences: int) -> str:
    return " ".join(_sentence(rng, _EN_WORDS, rng.randint(8, 18)) + "." for _ in range(sentences))


def _korean(rng: random.Random, sentences: int) -> str:
    parts = []
    for _ in range(sentences):
        words = [rng.choice(_KO_WORDS) for _ in range(rng.randint(5, 12))]
        if rng.random() < 0.3:
            words.insert(rng.randrange(len(words)), rng.choice(("Attention", "LLM", "RoPE", "MoE")))
        parts.append(" ".join(words) + " " + rng.choice(_KO_ENDINGS))
    return " ".join(parts)


def _note(rng: random.Random, tags: list[str], weights: list[float]) -> list[str]:
    title_words = [w.capitalize() for w in rng.sample(_EN_WORDS, rng.randint(3, 9))]
    title = " ".join(title_words[:2]) + ": " + " ".join(title_words[2:])
    authors = ", ".join(
        f"{rng.choice(_FIRST)} {rng.choice(_LAST)}" for _ in range(rng.randint(1, 12))
    )
    paragraphs = rng.choices((1, 2, 3), weights=(6, 3, 1))[0]
    long = rng.random() < 0.2
    korean = [
        _korean(rng, rng.randint(4, 9) if long else rng.randint(1, 3)) for _ in range(paragraphs)
    ]
    english = [
        _english(rng, rng.randint(4, 9) if long else rng.randint(1, 3)) for _ in range(paragraphs)
    ]
    chosen: list[str] = []
    for tag in rng.choices(tags, weights=weights, k=rng.randint(1, 4)):
        if tag not in chosen:
            chosen.append(tag)
    return [
        title,
        f"({authors})",
        _english(rng, rng.randint(6, 12)),
        *korean,
        *english,
        " ".join(f"#{t}" for t in chosen),
    ]


def _with_tolerances(rng: random.Random, header: str, notes: list[list[str]]) -> bytes:
    """Serialise a digest, sometimes in the ways real files differ (BOM, CRLF, NFD, blanks)."""
    lines = [header]
    blank_lines = rng.random() < 0.15
    for note in notes:
        if blank_lines:
            lines.append("")
        lines.extend(note)
    if rng.random() < 0.1:
        lines = [f"  {line} " for line in lines]
    text = "\n".join(lines) + "\n"
    if rng.random() < 0.05:
        text = unicodedata.normalize("NFD", text)
    if rng.random() < 0.1:
        text = text.replace("\n", "\r\n")
    data = text.encode("utf-8")
    return b"\xef\xbb\xbf" + data if rng.random() < 0.05 else data


def generate(out: Path, digests: int, seed: int = 0, start: date = date(2019, 1, 1)) -> list[Path]:
    """Write `digests` digest files into `out` and return their paths."""
    rng = random.Random(seed)
    tags = _tags()
    weights = [1 / (rank + 1) ** 1.1 for rank in range(len(tags))]
    out.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    day = start
    while len(paths) < digests:
        parts = [1, 2] if rng.random() < 0.1 and digests - len(paths) >= 2 else [None]
        for part in parts:
            header = f"{day.year}년 {day.month}월 {day.day}일" + (f" ({part})" if part else "")
            notes = [_note(rng, tags, weights) for _ in range(rng.randint(5, 20))]
            name = day.isoformat() + (f"-{part}" if part else "")
            path = out / f"{name}.txt"
            path.write_bytes(_with_tolerances(rng, header, notes))
            paths.append(path)
        day += timedelta(days=rng.choice((1, 1, 1, 2)))
    return paths


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m feeds.corpus", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--digests", type=int, required=True, help="how many digest files")
    parser.add_argument("--out", type=Path, required=True, help="folder to write them into")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    args = parser.parse_args(argv)
    paths = generate(args.out, args.digests, args.seed)
    print(f"wrote {len(paths)} digests to {args.out}")


if __name__ == "__main__":
    main()


def format_digest(digest: Digest) -> str:
    """The digest written back in the format parse_digest reads."""
    header = f"{digest.date.year}년 {digest.date.month}월 {digest.date.day}일"
    if digest.part is not None:
        header += f" ({digest.part})"
    lines = [header]
    for note in digest.notes:
        lines.append(note.title)
        if note.authors:
            lines.append(f"({', '.join(note.authors)})")
        lines += [*note.abstract, *note.korean, *note.english]
        if note.tags:
            lines.append(" ".join(f"#{tag}" for tag in note.tags))
    return "\n".join(lines) + "\n"
