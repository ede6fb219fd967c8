"""The COCO caption evaluation's tokens: Stanford's PTBTokenizer from the CoreNLP jar pycocoevalcap ships
(run with ``java``), or, where that cannot run, ``tokenize``'s nltk imitation of it."""
from __future__ import annotations

import importlib.util
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple, Optional

from ..text import PUNCTUATION, tokenize
from .java import java_problem

PTB_JAR = "ptb-jar"
PTB_NLTK = "nltk"
_JAR = "stanford-corenlp-3.4.1.jar"
_TIMEOUT_S = 600


class Tokens(NamedTuple):
    """Each caption's tokens joined by single spaces, the tokenizer that made them and, for the nltk
    fallback, why the jar did not run."""

    captions: list[str]
    backend: str  # PTB_JAR or PTB_NLTK
    note: Optional[str]


class _Unavailable(Exception):
    """The jar cannot run here (the message says why)."""


def coco_tokens(captions: Sequence[str], *, jar: bool = True) -> Tokens:
    """``captions`` as the COCO evaluation tokenises them (lowercased PTB tokens without punctuation): by
    the PTBTokenizer jar when ``jar`` and java and pycocoevalcap are there, else by ``tokenize`` (equal on
    plain captions; it differs on some abbreviations, curly quotes and runs of punctuation)."""
    if jar:
        try:
            return Tokens(_ptb_jar(captions), PTB_JAR, None)
        except _Unavailable as error:
            note = f"PTBTokenizer jar unavailable: {error}; tokens from nltk"
    else:
        note = None
    return Tokens([" ".join(tokenize(c)) for c in captions], PTB_NLTK, note)


def _jar_path() -> Path:
    try:
        spec = importlib.util.find_spec("pycocoevalcap.tokenizer.ptbtokenizer")
    except ModuleNotFoundError:
        spec = None
    if spec is None or spec.origin is None:
        raise _Unavailable("pycocoevalcap is not installed")
    path = Path(spec.origin).with_name(_JAR)
    if not path.is_file():
        raise _Unavailable(f"{path} is missing")
    return path


def _ptb_jar(captions: Sequence[str]) -> list[str]:
    """PTBTokenizer run as pycocoevalcap runs it (one caption a line, lowercased), then its punctuation
    removed; a temporary file of our own, so a read-only install of pycocoevalcap still works."""
    if not captions:
        return []
    problem = java_problem()
    if problem:
        raise _Unavailable(problem)
    jar = _jar_path()
    lines = [" ".join(c.split()) for c in captions]  # a line per caption: no line break of any kind inside
    with tempfile.TemporaryDirectory() as tmp:
        text = Path(tmp, "captions.txt")
        text.write_text("\n".join(lines), encoding="utf-8")
        try:
            done = subprocess.run(["java", "-cp", str(jar), "edu.stanford.nlp.process.PTBTokenizer", "-preserveLines",
                                   "-lowerCase", "-encoding", "utf-8", str(text)],
                                  capture_output=True, timeout=_TIMEOUT_S)
        except (OSError, subprocess.TimeoutExpired) as error:
            raise _Unavailable(f"java failed to run it ({error})") from None
    out = done.stdout.decode("utf-8", errors="replace").split("\n")[: len(lines)]
    if done.returncode != 0 or len(out) != len(lines):
        why = done.stderr.decode("utf-8", errors="replace").strip().splitlines()[-1:] or ["no output"]
        raise _Unavailable(f"it gave {len(out)} lines for {len(lines)} captions, status {done.returncode}: {why[0]}")
    # split on spaces alone, as pycocoevalcap: the jar keeps a no-break space inside a token ("3\xa01/2")
    return [" ".join(t for t in line.rstrip().split(" ") if t not in PUNCTUATION) for line in out]
