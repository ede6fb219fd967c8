"""Bad input end to end: a corpus of broken, odd and good videos through extract, count (a trained
counter, and the HOG baseline) and caption.

The promise under test (README): bad input gets a clear, one-line error naming the file and the reason,
never a traceback; a batch over a folder goes on past a bad video and records it (exit status 2).

The corpus is written once per module (``corpus``); each pipeline runs once over it (module fixtures) and
the tests below look at one aspect each, so a failure names what broke.
"""
from __future__ import annotations

import csv
import fractions
import json
import os
import re
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import run_pipeline, write_opencv

from vidrnn.files import list_videos, printable, single_line
from vidrnn.synth import make_dataset

av = pytest.importorskip("av")

EXIT_SOME_FAILED = 2
ODD_NAME = "-rf clip é.mp4"
LONG_NAME = "long " + "é" * 122 + ".mp4"  # 253 bytes: the longest file name is 255, so NAME.npz is too long
NOT_UTF8_NAME = os.fsdecode(b"latin-1 caf\xe9.mp4")  # a file name whose bytes are not UTF-8
# Native library chatter that must not end up as a user-facing reason (decord/OpenCV log prefixes and
# C++ source locations).
NOISE = re.compile(r"\[\d\d:\d\d:\d\d\]|\.(cc|cpp|c|h):\d+|Check failed|/github/workspace|\[ WARN")
# Lines native decoders print straight to stderr: FFmpeg's av_log ("[mov,mp4,... @ 0x55..] moov atom not
# found"), decord/dmlc's LOG ("[07:32:51] .../video_reader.cc:83: ERROR opening: ..."), OpenCV's warnings.
CHATTER = re.compile(r"^\[[\w,]+ @ 0x[0-9a-f]+\]|^\[\d\d:\d\d:\d\d\] \S+\.(cc|cpp|h):\d+|^\[ ?(WARN|ERROR)",
                     re.MULTILINE)


@dataclass(frozen=True)
class Case:
    """One corpus entry: ``ok`` inputs must be processed, the others reported once with a reason."""

    path: str  # relative to the corpus root
    ok: bool
    reason: str | None = None  # regex the failure reason must match (bad inputs with a specific cause)
    what: str = ""


# ---------------------------------------------------------------------------------------------- writers

def _frames(n: int, width: int, height: int):
    """RGB frames that differ from one another (so every codec writes real data)."""
    for i in range(n):
        frame = np.zeros((height, width, 3), np.uint8)
        frame[..., 0] = (i * 37) % 256
        frame[..., 1] = 128
        frame[:, : max(width // 2, 1), 2] = 200
        yield frame


def _cv_write(path: Path, frames, fourcc: str, fps: float = 10.0, *, color: bool = True) -> Path:
    frames = list(frames)
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (w, h), isColor=color)
    assert writer.isOpened(), f"OpenCV's writer refused {path.name} ({fourcc}, {w}x{h})"
    for f in frames:
        writer.write(f if f.ndim == 2 else cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    writer.release()
    assert path.stat().st_size > 0
    return path


def _av_video(path: Path, frames, *, codec="libx264", pix_fmt="yuv420p", fmt="rgb24", rate=10, pts=None,
              options=None, container_options=None) -> Path:
    """Write frames with PyAV; ``pts`` (milliseconds) gives each frame its own timestamp (variable rate)."""
    frames = list(frames)
    h, w = frames[0].shape[:2]
    with av.open(str(path), "w", options=container_options or {}) as c:
        s = c.add_stream(codec, rate=rate)
        s.width, s.height, s.pix_fmt = w, h, pix_fmt
        s.options = options or {}
        if pts is not None:
            s.codec_context.time_base = fractions.Fraction(1, 1000)
        for i, f in enumerate(frames):
            vf = av.VideoFrame.from_ndarray(f, format=fmt)
            if pts is not None:
                vf.pts, vf.time_base = pts[i], fractions.Fraction(1, 1000)
            c.mux(s.encode(vf))
        c.mux(s.encode())
    return path


def _audio_only(path: Path) -> Path:
    """An .mp4 holding one AAC audio stream and no video stream."""
    with av.open(str(path), "w") as c:
        s = c.add_stream("aac", rate=16000)
        for k in range(10):
            a = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            a.sample_rate, a.pts = 16000, k * 1024
            for pkt in s.encode(a):
                c.mux(pkt)
        for pkt in s.encode(None):
            c.mux(pkt)
    return path


def make_corpus(root: Path, *, large: bool = True) -> dict[str, Case]:
    """Write the bad-input corpus under ``root``; returns name -> Case. ``large=False`` leaves out the
    4000x3000 video (for the HOG counter, which takes seconds per frame of that size)."""
    root.mkdir(parents=True, exist_ok=True)
    cases: list[Case] = []

    def add(name, ok, reason=None, what=""):
        cases.append(Case(name, ok, reason, what))

    # -- good videos
    write_opencv(root / "good_a.mp4", 20, "mp4v")
    add("good_a.mp4", True, what="good: mp4v 64x48, 20 frames")
    write_opencv(root / "good_b.avi", 15, "MJPG")
    add("good_b.avi", True, what="good: MJPG avi 64x48, 15 frames")

    # -- unreadable
    (root / "empty.mp4").write_bytes(b"")
    add("empty.mp4", False, r"empty|0 bytes", "zero-byte file")
    whole = (root / "good_a.mp4").read_bytes()  # mp4v from OpenCV: the moov atom is at the end
    (root / "truncated.mp4").write_bytes(whole[: len(whole) // 2])
    add("truncated.mp4", False, None, "good mp4 cut in half (moov atom lost)")
    (root / "random.mp4").write_bytes(np.random.default_rng(0).integers(0, 256, 20000, np.uint8).tobytes())
    add("random.mp4", False, None, "20 kB of random bytes")
    (root / "random\nline.mp4").write_bytes(np.random.default_rng(3).integers(0, 256, 5000, np.uint8).tobytes())
    add("random\nline.mp4", False, None, "random bytes, a newline in the name (printed escaped: random\\nline.mp4)")
    (root / "text.avi").write_text("this is not a video\n" * 50, encoding="utf-8")
    add("text.avi", False, None, "a text file named .avi")
    _audio_only(root / "audio_only.mp4")
    add("audio_only.mp4", False, r"no video stream", "mp4 with only an AAC audio stream")
    (root / "x.mp4").mkdir()
    add("x.mp4", False, r"folder|directory", "a directory named x.mp4")
    os.symlink("loop.mp4", root / "loop.mp4")
    add("loop.mp4", False, r"broken or looping symbolic link", "symlink loop loop.mp4 -> loop.mp4")
    os.mkfifo(root / "fifo.mp4")  # opening it to read would wait for a writer forever
    add("fifo.mp4", False, r"^not a regular file$", "a named pipe called fifo.mp4")
    os.symlink("/dev/zero", root / "zeros.avi")  # endless bytes
    add("zeros.avi", False, r"not a regular file \(a link to /dev/zero\)", "symlink zeros.avi -> /dev/zero")
    (root / "photo.mp4").write_bytes(cv2.imencode(".png", next(_frames(1, 64, 48)))[1].tobytes())
    add("photo.mp4", False, r"^a still image \(PNG\), not a video$", "a PNG named photo.mp4 (FFmpeg reads 1 frame)")
    (root / "playlist.avi").write_text(f"#EXTM3U\n#EXTINF:2,\n{root / 'good_a.mp4'}\n#EXT-X-ENDLIST\n")
    add("playlist.avi", False, r"^an HLS playlist \(", "an HLS playlist naming good_a.mp4 (FFmpeg would play it)")

    # -- odd but readable
    _cv_write(root / "one_frame.avi", _frames(1, 64, 48), "MJPG")
    add("one_frame.avi", True, what="one frame (MJPG avi)")
    if large:
        _cv_write(root / "large.avi", _frames(3, 4000, 3000), "MJPG")
        add("large.avi", True, what="4000x3000, 3 frames, MJPG avi")
    # OpenCV's mp4v writer refuses 2x1 (isOpened() is False); its MJPG avi writer accepts it.
    _cv_write(root / "tiny_2x1.avi", _frames(5, 2, 1), "MJPG")
    add("tiny_2x1.avi", True, what="width 2, height 1, 5 frames, MJPG avi")
    gray = [np.tile(np.uint8(i * 20), (48, 64)) for i in range(10)]
    _av_video(root / "gray.mkv", gray, codec="ffv1", pix_fmt="gray", fmt="gray")
    add("gray.mkv", True, what="single-channel: PyAV ffv1, pix_fmt gray, 10 frames")
    _cv_write(root / "gray_cv.avi", gray, "MJPG", color=False)
    add("gray_cv.avi", True, what="grayscale: OpenCV isColor=False MJPG avi, 10 frames")
    steps = [40, 200, 10, 500, 33] * 3
    _av_video(root / "vfr.mp4", _frames(12, 64, 48), rate=25, pts=[sum(steps[:i]) for i in range(12)],
              options={"bf": "0"})
    add("vfr.mp4", True, what="variable frame rate: H.264, irregular pts (10..500 ms apart), 12 frames")
    write_opencv(root / ODD_NAME, 12, "mp4v")
    add(ODD_NAME, True, what="leading dash, spaces and unicode in the name")
    write_opencv(root / LONG_NAME, 12, "mp4v")
    add(LONG_NAME, True, what="a 253-byte name: a feature file or picture named after it would not fit")
    os.rename(write_opencv(root / "not_utf8.mp4", 12, "mp4v"), root / NOT_UTF8_NAME)  # OpenCV crashes on it
    add(NOT_UTF8_NAME, True, what="a byte that is not UTF-8 in the name (Latin-1 e-acute): id 'latin-1 caf\\xe9'")
    mid = bytearray(write_opencv(root / "corrupt_middle.avi", 20, "MJPG").read_bytes())
    m = len(mid) // 2
    mid[m - 1500: m + 1500] = np.random.default_rng(1).integers(0, 256, 3000, np.uint8).tobytes()
    (root / "corrupt_middle.avi").write_bytes(bytes(mid))
    add("corrupt_middle.avi", True, what="MJPG avi, 3000 bytes in the middle overwritten (frames before decode)")
    noise = np.random.default_rng(2).integers(0, 256, (20, 48, 64, 3), np.uint8)
    full = _av_video(root.parent / "full_faststart.mp4", noise, options={"g": "5", "bf": "0"},
                     container_options={"movflags": "faststart"})
    fast = full.read_bytes()
    full.unlink()
    (root / "truncated_faststart.mp4").write_bytes(fast[: len(fast) // 2])
    add("truncated_faststart.mp4", True, what="H.264 mp4 with moov first, cut in half (header says 20 frames)")
    return {c.path: c for c in cases}


# --------------------------------------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> tuple[Path, dict[str, Case]]:
    root = tmp_path_factory.mktemp("bad") / "corpus"
    return root, make_corpus(root)


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> dict[str, Path]:
    """A tiny count and a tiny caption checkpoint, trained through the train pipeline on synthetic clips."""
    root = tmp_path_factory.mktemp("train")
    data = make_dataset(root / "data", num_videos=10, width=64, height=48, num_frames=8, fps=8.0)
    found = {}
    for task, labels in (("count", data["counts"]), ("caption", data["captions"])):
        run_dir = root / f"run_{task}"
        res = run_pipeline("train", f"task={task}", f"data.video_dir={data['videos_dir']}",
                           f"data.annotations={labels}", "video.size=32", "video.num_frames=3",
                           "encoder.layer=layer1", "trainer.max_epochs=1", "video.workers=0", "quiet=true",
                           f"hydra.run.dir={run_dir}", f"data.cache_dir={root / 'cache'}")
        assert res.returncode == 0, f"training {task} failed:\n{res.stdout}\n{res.stderr}"
        found[task] = run_dir / "checkpoints" / "best.pt"
        assert found[task].is_file()
    return found


@dataclass
class Run:
    name: str
    res: subprocess.CompletedProcess
    out: Path
    cases: dict[str, Case]  # the corpus it ran over

    def failed_lines(self) -> list[str]:
        """stdout's ``  failed: <video>: <reason>`` lines."""
        return [ln.strip() for ln in self.res.stdout.splitlines() if ln.strip().startswith("failed: ")]

    def failed(self) -> dict[str, list[str]]:
        """video -> reasons, from stdout's failed lines (a video listed twice has two reasons); a name
        printed with escapes (``random\\nline.mp4``) is mapped back to the corpus's."""
        printed = {single_line(path): path for path in self.cases}
        got: dict[str, list[str]] = {}
        for ln in self.failed_lines():
            video, reason = _split_failed(ln[len("failed: "):])
            got.setdefault(printed.get(video, video), []).append(reason)
        return got


def _split_failed(rest: str) -> tuple[str, str]:
    """``<video>: <reason>`` -> (video, reason), split at the first ': ' (no corpus name holds one)."""
    video, _, reason = rest.partition(": ")
    return video, reason


@pytest.fixture(scope="module")
def extract_run(corpus, tmp_path_factory) -> Run:
    root, cases = corpus
    out = tmp_path_factory.mktemp("extract") / "out"
    res = run_pipeline("extract", f"input_dir={root}", f"output_dir={out}", "video.size=64", "video.num_frames=4",
                       "quiet=true")
    return Run("extract", res, out, cases)


@pytest.fixture(scope="module")
def count_run(corpus, checkpoints, tmp_path_factory) -> Run:
    root, cases = corpus
    out = tmp_path_factory.mktemp("count")
    res = run_pipeline("count", f"input_dir={root}", f"checkpoint={checkpoints['count']}",
                       f"output={out}/counts.csv", "quiet=true", "render=true", f"hydra.run.dir={out}/hydra")
    return Run("count", res, out, cases)


@pytest.fixture(scope="module")
def hog_run(tmp_path_factory) -> Run:
    """count with counter=hog (no checkpoint; frames at full size) over the corpus without large.avi."""
    root = tmp_path_factory.mktemp("hog_corpus") / "corpus"
    cases = make_corpus(root, large=False)
    out = tmp_path_factory.mktemp("hog")
    res = run_pipeline("count", f"input_dir={root}", "counter=hog", "video.num_frames=3",
                       f"output={out}/counts.csv", "quiet=true", f"hydra.run.dir={out}/hydra")
    return Run("hog", res, out, cases)


@pytest.fixture(scope="module")
def caption_run(corpus, checkpoints, tmp_path_factory) -> Run:
    root, cases = corpus
    out = tmp_path_factory.mktemp("caption")
    res = run_pipeline("caption", f"input_dir={root}", f"checkpoint={checkpoints['caption']}",
                       f"output={out}/caps.json", "quiet=true", f"hydra.run.dir={out}/hydra")
    return Run("caption", res, out, cases)


@pytest.fixture(params=["extract", "count", "caption", "hog"])
def pipeline_run(request) -> Run:
    return request.getfixturevalue(f"{request.param}_run")


def _stem(path: str) -> str:
    return Path(path).stem


def _processed(run: Run) -> set[str]:
    """Corpus paths (extract) or video ids (count, caption) in the pipeline's result file."""
    if run.name == "extract":
        manifest = run.out / "manifest.jsonl"
        return {json.loads(ln)["video"] for ln in manifest.read_text(encoding="utf-8").splitlines()} \
            if manifest.exists() else set()
    if run.name in ("count", "hog"):
        if not (run.out / "counts.csv").exists():
            return set()
        with open(run.out / "counts.csv", newline="", encoding="utf-8") as f:
            return {r["video_id"] for r in csv.DictReader(f)}
    caps = run.out / "caps.json"
    return {r["video_id"] for r in json.loads(caps.read_text(encoding="utf-8"))} if caps.exists() else set()


def _key(run: Run, case: Case) -> str:
    """How a processed video is named in ``run``'s result file (ids are stems; the corpus's are unique)."""
    return case.path if run.name == "extract" else printable(_stem(case.path))


def _context(run: Run) -> str:
    code = run.res.returncode
    died = f" (killed by signal {-code})" if code < 0 else ""
    return f"\n--- {run.name} exit {code}{died}\n--- stdout:\n{run.res.stdout[-4000:]}" \
           f"\n--- stderr:\n{run.res.stderr[-4000:]}"


# ------------------------------------------------------------------------------------------------ tests

def test_corpus_is_what_it_claims(corpus):
    """The generator itself: every entry exists as the kind of thing it claims to be."""
    root, cases = corpus
    assert sorted(list_videos(root)) == sorted(cases) and len(cases) == 25  # 2 good, 12 unreadable, 11 odd
    assert (root / "empty.mp4").stat().st_size == 0 and (root / "x.mp4").is_dir()
    assert (root / "loop.mp4").is_symlink() and not (root / "loop.mp4").exists()
    assert stat.S_ISFIFO((root / "fifo.mp4").stat().st_mode) and (root / "zeros.avi").is_char_device()
    assert (root / ODD_NAME).is_file()
    assert (root / "playlist.avi").read_text().startswith("#EXTM3U")
    with av.open(str(root / "audio_only.mp4")) as c:
        assert len(c.streams.video) == 0 and len(c.streams.audio) == 1
    with av.open(str(root / "gray.mkv")) as c:
        assert c.streams.video[0].codec_context.pix_fmt == "gray"
    with av.open(str(root / "vfr.mp4")) as c:
        stream = c.streams.video[0]
        gaps = np.diff([float(f.pts * f.time_base) for f in c.decode(stream)])
        assert len(gaps) == 11 and gaps.max() > 10 * gaps.min()  # irregular timestamps
    cap = cv2.VideoCapture(str(root / "large.avi"))
    assert (cap.get(cv2.CAP_PROP_FRAME_WIDTH), cap.get(cv2.CAP_PROP_FRAME_HEIGHT)) == (4000, 3000)
    cap.release()


def test_outputs_named_after_a_long_file_name_fit(pipeline_run):
    """A feature file, picture or plot named after a 253-byte file name is cut to fit (255 bytes at most),
    and none is lost."""
    run = pipeline_run
    assert "too long" not in run.res.stdout + run.res.stderr, _context(run)
    named = {p.parent.name: p.name for p in run.out.rglob("long *")}
    assert all(len(os.fsencode(name)) <= 255 for name in named.values()), named
    wanted = {"extract": ["features"], "count": ["sheets", "rendered", "counts_plots"], "hog": ["sheets"],
              "caption": ["sheets"]}[run.name]
    assert sorted(set(wanted) & set(named)) == sorted(wanted), named


def test_no_traceback(pipeline_run):
    """Never a traceback to the user, on stdout or stderr."""
    run = pipeline_run
    assert "Traceback" not in run.res.stdout and "Traceback" not in run.res.stderr, _context(run)


def test_no_native_decoder_chatter(pipeline_run):
    """One line per bad video, not the decoders' own log lines on stderr as well (vidrnn/__init__.py sets
    OPENCV_FFMPEG_LOGLEVEL to keep FFmpeg's chatter off users' consoles; decord's is not covered)."""
    run = pipeline_run
    chatter = [m.group(0) for m in CHATTER.finditer(run.res.stderr + run.res.stdout)]
    assert not chatter, f"{run.name}: {len(chatter)} native log lines, e.g.:\n" + "\n".join(
        ln for ln in (run.res.stderr + run.res.stdout).splitlines() if CHATTER.search(ln))[:1500]


def test_exit_status_says_some_videos_failed(pipeline_run):
    """0 all done, 2 some videos failed, 1 the job stopped: with bad videos in the folder it is 2."""
    run = pipeline_run
    assert run.res.returncode == EXIT_SOME_FAILED, _context(run)


def test_every_readable_video_is_processed(pipeline_run):
    """The batch goes on past bad videos: every good or odd-but-readable video has a result."""
    run = pipeline_run
    cases = run.cases
    assert run.res.returncode in (0, EXIT_SOME_FAILED), _context(run)
    processed = _processed(run)
    missing = [c.path for c in cases.values() if c.ok and _key(run, c) not in processed]
    assert not missing, f"{run.name}: readable videos without a result: {missing}" \
                        f"\nfailed lines: {run.failed_lines()}" + _context(run)
    bad_with_result = [c.path for c in cases.values() if not c.ok and _key(run, c) in processed]
    assert not bad_with_result, f"{run.name}: unreadable inputs with a result: {bad_with_result}"


def test_each_bad_video_is_reported_once_with_a_clear_one_line_reason(pipeline_run):
    """stdout has exactly one ``failed: <file>: <reason>`` line per bad input and none for readable ones."""
    run = pipeline_run
    cases = run.cases
    failed = run.failed()
    bad = {c.path for c in cases.values() if not c.ok}
    assert set(failed) == bad, f"{run.name}: reported {sorted(failed)}, expected {sorted(bad)}" + _context(run)
    for path, reasons in failed.items():
        assert len(reasons) == 1, f"{run.name}: {path} reported {len(reasons)} times: {reasons}"
        reason = reasons[0].strip()
        assert reason and "\n" not in reason and len(reason) <= 300, f"{run.name}: {path}: {reason!r}"
        assert not NOISE.search(reason), f"{run.name}: {path}: reason leaks native log text: {reason!r}"
        case = cases[path]
        if case.reason:
            assert re.search(case.reason, reason, re.IGNORECASE), \
                f"{run.name}: {path} ({case.what}): reason {reason!r} does not say /{case.reason}/"


def test_extract_failures_file(extract_run):
    """failures.jsonl: one JSON line per bad input (video, one-line reason), the same as stdout says."""
    run = extract_run
    cases = run.cases
    path = run.out / "failures.jsonl"
    assert path.exists(), _context(run)
    rows = [json.loads(ln) for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]
    videos = [r["video"] for r in rows]
    assert sorted(videos) == sorted(c.path for c in cases.values() if not c.ok), rows
    assert all(r["reason"] and "\n" not in r["reason"] for r in rows), rows
    assert {r["video"]: r["reason"] for r in rows} == {v: rs[0] for v, rs in run.failed().items()}


def test_extract_odd_videos_are_recorded_faithfully(extract_run):
    """What the manifest says of the odd-but-readable videos, and their feature files."""
    run = extract_run
    entries = {json.loads(ln)["video"]: json.loads(ln)
               for ln in (run.out / "manifest.jsonl").read_text(encoding="utf-8").splitlines()}
    for video, e in entries.items():
        with np.load(run.out / e["feature_file"]) as z:
            assert z["features"].shape[0] == 4 and np.isfinite(z["features"]).all(), video
    assert (run.out / "features" / f"{ODD_NAME}.npz").is_file()
    assert entries["one_frame.avi"]["frame_count"] == 1 and entries["one_frame.avi"]["frame_indices"] == [0] * 4
    assert (entries["large.avi"]["width"], entries["large.avi"]["height"]) == (4000, 3000)
    assert (entries["tiny_2x1.avi"]["width"], entries["tiny_2x1.avi"]["height"]) == (2, 1)
    assert entries["vfr.mp4"]["frame_count"] == 12
    assert entries["truncated_faststart.mp4"]["frame_count_source"] == "counted"
    assert entries["truncated_faststart.mp4"]["frame_count"] < entries["truncated_faststart.mp4"]["header_frames"]
    assert entries["corrupt_middle.avi"]["frame_count"] <= 20


@pytest.mark.parametrize("counter", ["count", "hog"])
def test_count_values_are_sane(counter, request):
    run = request.getfixturevalue(f"{counter}_run")
    assert (run.out / "counts.csv").exists(), _context(run)
    with open(run.out / "counts.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert rows and all(np.isfinite(float(r["count"])) and float(r["count"]) >= 0 for r in rows)


def test_captions_are_sane(caption_run, checkpoints):
    from vidrnn.checkpoint import load_checkpoint
    from vidrnn.text import SPECIALS, Vocab

    run = caption_run
    assert (run.out / "caps.json").exists(), _context(run)
    rows = json.loads((run.out / "caps.json").read_text(encoding="utf-8"))
    words = set(Vocab.from_dict(load_checkpoint(checkpoints["caption"])["vocab"]).tokens) - set(SPECIALS)
    assert rows and all(np.isfinite(r["score"]) for r in rows)
    for r in rows:  # at least one word, each the model's own (no <unk>, <eos>...), nothing blank
        assert isinstance(r["caption"], str) and r["caption"].split(), r
        assert r["caption"] == " ".join(r["caption"].split()) and set(r["caption"].split()) <= words, r


def test_a_long_name_is_cut_to_fit_and_keeps_apart_from_its_neighbours():
    from vidrnn.files import NAME_MAX, fitted_name

    assert fitted_name("clip.mp4", ".npz") == "clip.mp4.npz"
    a, b = (fitted_name("é" * 130 + tail, ".npz") for tail in ("a.mp4", "b.mp4"))
    assert a != b and a.endswith(".npz") and b.endswith(".npz")
    assert all(len(os.fsencode(n)) <= NAME_MAX for n in (a, b))
    assert a.encode("utf-8").decode("utf-8") == a  # no character cut in two


def test_a_long_video_id_is_shortened_in_its_timeline_plot_title():
    from vidrnn.predict import plot_title

    assert plot_title("cam1") == "cam1"
    title = plot_title("start" + "x" * 300 + "end")
    assert len(title) <= 70 and title.startswith("start") and title.endswith("end") and "…" in title


def test_damaged_frames_are_skipped_and_every_read_gives_the_same_frames(tmp_path, caplog):
    """FFmpeg fails the frames of a damaged stretch and goes on with the frames after it. Those are skipped
    (and named in a warning), so every read of the file decodes the same frames and each sampled frame
    arrives. Before, an H.264 mp4 with its index first, cut in half, was counted past a failed frame that
    the sampling read then stopped at: the planned frames never came and the run ended with a reshape
    error; a stretch of zeroed bytes ended the video there."""
    from vidrnn.features.encode import Encoded, map_frames
    from vidrnn.video import Sampling, read_sampled

    noise = np.random.default_rng(2).integers(0, 256, (40, 64, 96, 3), np.uint8)
    whole = _av_video(tmp_path / "whole.mp4", noise, container_options={"movflags": "faststart"}).read_bytes()
    (tmp_path / "v").mkdir()
    (tmp_path / "v/cut.mp4").write_bytes(whole[: len(whole) // 2])
    zeroed = bytearray(_av_video(tmp_path / "plain.mp4", noise).read_bytes())
    middle, eighth = len(zeroed) // 2, len(zeroed) // 8
    zeroed[middle - eighth: middle + eighth] = bytes(2 * eighth)
    (tmp_path / "v/zeroed.mp4").write_bytes(bytes(zeroed))
    for name in ("cut.mp4", "zeroed.mp4"):
        path = str(tmp_path / "v" / name)
        frames, meta = read_sampled(path, Sampling(num_frames=8), size=32)
        assert frames.shape == (8, 32, 32, 3) and meta.damaged_frames > 0
        capture = cv2.VideoCapture(path)
        assert meta.frame_count == sum(capture.grab() for _ in range(60))  # every frame that decodes
        np.testing.assert_array_equal(read_sampled(path, Sampling(num_frames=8), size=32)[0], frames)
    videos = [(name, str(tmp_path / "v" / name)) for name in ("cut.mp4", "zeroed.mp4")]
    with caplog.at_level("WARNING", logger="vidrnn.video"):
        results = list(map_frames(videos, lambda f: f.mean((1, 2, 3)), Sampling(num_frames=8), workers=1))
    assert sorted(r.key for r in results if not isinstance(r, Encoded) and r.values.shape == (8,)) == [
        "cut.mp4", "zeroed.mp4"]
    assert all(re.search(rf"{n}: \d+ frames? failed to decode", caplog.text) for n in ("cut.mp4", "zeroed.mp4"))


def test_a_file_cut_short_is_named_in_a_warning(tmp_path, caplog):
    """An AVI cut to its first half (a copy that stopped, a recording whose disk filled): its header still
    says 20 frames (5 s); the frames that are there are read, and a warning says where decoding ended.
    Nothing said so before: the manifest's frame counts were the only sign."""
    from vidrnn.features.encode import map_frames
    from vidrnn.video import Sampling

    noise = np.random.default_rng(3).integers(0, 256, (20, 64, 96, 3), np.uint8)
    whole = _av_video(tmp_path / "whole.avi", noise, codec="mjpeg", pix_fmt="yuvj420p", rate=4).read_bytes()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(whole[: len(whole) // 2])
    with caplog.at_level("WARNING", logger="vidrnn.video"):
        [result] = map_frames([("cut.avi", str(cut))], _frame_means, Sampling(num_frames=4), workers=0)
        list(map_frames([("whole.avi", str(tmp_path / "whole.avi"))], _frame_means, Sampling(num_frames=4),
                        workers=0))
    assert result.meta.header_frames == 20 and 1 < result.meta.frame_count < 15
    m = result.meta
    assert re.search(rf"cut\.avi: its header says 20 frames \(5\.0 s\), decoding ended at {m.duration_s:.1f} s "
                     rf"\({m.frame_count} frames\): cut short \(truncated\)\?", caplog.text), caplog.text
    assert "whole.avi" not in caplog.text


def _frame_means(frames):
    return frames.mean((1, 2, 3))


def test_a_variable_frame_rate_video_is_rendered_on_its_own_clock(tmp_path, monkeypatch):
    """The burned-in clock and the caption of each frame follow the frames' own timestamps, and the copy
    plays as long as the source (before: index / header fps, so a 10-frame-a-second header squeezed 1.5 s
    into 1.2 s and showed later frames' captions early)."""
    import vidrnn.pictures as pictures
    steps = [40, 200, 10, 500, 33] * 3
    pts = [sum(steps[:i]) for i in range(12)]  # milliseconds
    path = _av_video(tmp_path / "vfr.mp4", [np.full((48, 64, 3), 20 * i, np.uint8) for i in range(12)], rate=25,
                     pts=pts, options={"bf": "0"})
    shown = []
    real = pictures.annotate
    monkeypatch.setattr(pictures, "annotate", lambda frame, notes, index, seconds, size: (
        shown.append(seconds), real(frame, notes, index, seconds, size))[1])
    written = pictures.render_video({"path": str(path), "segments": [[0.0, 1.0, "a"], [1.0, 2.0, "b"]]},
                                    tmp_path / "out.mp4")
    assert written == 12 and shown == pytest.approx([t / 1000 for t in pts], abs=2e-3)
    copy = cv2.VideoCapture(str(tmp_path / "out.mp4"))
    assert pts[-1] / 1000 < 12 / copy.get(cv2.CAP_PROP_FPS) < pts[-1] / 1000 + 0.25  # the last frame's own length


def test_training_names_the_videos_it_could_not_read_in_its_last_lines(tmp_path):
    """Unreadable annotated videos are skipped (the model trains on the rest) and named in the summary at the
    end and in metrics.json, not only in a warning lost in the log above."""
    data = make_dataset(tmp_path / "data", num_videos=6, width=64, height=48, num_frames=8, fps=8.0, subdirs=False)
    broken = sorted(Path(data["videos_dir"]).glob("vid000[12].*"))
    for path in broken:
        path.write_bytes(b"not a video\n" * 100)
    res = run_pipeline("train", "task=count", f"data.video_dir={data['videos_dir']}",
                       f"data.annotations={data['counts']}", "video.size=32", "video.num_frames=3",
                       "encoder.layer=layer1", "trainer.max_epochs=1", "video.workers=0", "quiet=true",
                       f"hydra.run.dir={tmp_path}/run", f"data.cache_dir={tmp_path}/c")
    assert res.returncode == 0, res.stderr
    names = ", ".join(repr(p.name) for p in broken)
    assert f"train: 2 videos skipped, unreadable: {names} (metrics.json says why)" in res.stdout.splitlines()
    assert sorted(json.loads((tmp_path / "run/metrics.json").read_text())["unreadable"]) == [p.name for p in broken]
