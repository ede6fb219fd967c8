"""The HTML report: written by a real count run, opened in headless Chromium with every image loaded."""
import re
from html.parser import HTMLParser
from pathlib import Path

import cv2
from browser import images_loaded, screenshot
from conftest import run_pipeline
from test_pictures import write_clip

from vidrnn.pictures import Pictures
from vidrnn.report import write_report
from vidrnn.synth import make_dataset


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.links, self.text = [], []

    def handle_starttag(self, tag, attrs):
        self.links += [v for k, v in attrs if k in ("src", "href")]

    def handle_data(self, data):
        self.text.append(data)


def parse(page):
    parser = _Links()
    parser.feed(page.read_text(encoding="utf-8"))
    return parser


def test_count_run_report_opens_in_chromium_with_every_image(tmp_path):
    data = make_dataset(tmp_path / "data", num_videos=3, seed=3, width=96, height=72, num_frames=12, fps=6.0,
                        subdirs=False)
    out = tmp_path / "run"
    res = run_pipeline("count", f"input_dir={data['videos_dir']}", "counter=hog", f"output={out}/counts.csv",
                       f"labels={data['frame_counts']}", "render=true", "video.num_frames=3", "quiet=true")
    assert res.returncode == 0, res.stderr
    page = out / "report.html"
    assert f"report {page}" in res.stdout
    ids = ["vid0000", "vid0001", "vid0002"]
    assert sorted(p.stem for p in (out / "sheets").glob("*.png")) == ids
    assert sorted(p.stem for p in (out / "rendered").glob("*.mp4")) == ids
    parsed = parse(page)
    local = [link for link in parsed.links if not link.startswith("#")]
    assert local and all(not re.match(r"[a-z]+:|/", link) for link in local)  # relative: no server, no network
    assert all((out / link).exists() for link in local)
    assert {"sheets/vid0000.png", "rendered/vid0000.mp4", "counts_plots/vid0000.png", "counts.csv",
            "counts_metrics.json"} <= set(local)
    assert "frames.MAE" in parsed.text  # the metrics file, flattened
    count, broken = images_loaded(page)
    assert (count, broken) == (6, [])  # a contact sheet and a count timeline per video
    shot = cv2.imread(str(screenshot(page, tmp_path / "report.png")))
    assert shot.shape[:2] == (2400, 1200) and shot.std() > 20  # not a blank page


def test_a_rerun_s_report_shows_its_own_videos_and_truth(tmp_path):
    """A count run into an output folder used before on other videos, without the labels of that run: its
    report lists only its own videos (they were all listed: "Videos (3)" for 1), with no true counts left
    from the earlier run."""
    data = make_dataset(tmp_path / "data", num_videos=3, seed=3, width=64, height=48, num_frames=8, fps=4.0,
                        subdirs=False)
    out, videos = tmp_path / "run", Path(data["videos_dir"])
    args = ["counter=hog", f"output={out}/counts.csv", "video.num_frames=2", "quiet=true", "sheets=false",
            "plots=false"]
    first = run_pipeline("count", f"input_dir={videos}", f"labels={data['counts']}", *args)
    assert first.returncode == 0, first.stderr
    assert "Videos (3)" in parse(out / "report.html").text and "<th>true</th>" in (out / "report.html").read_text()
    (tmp_path / "one").mkdir()
    (tmp_path / "one" / "vid0001.mp4").symlink_to(next(videos.glob("vid0001.*")))
    again = run_pipeline("count", f"input_dir={tmp_path / 'one'}", *args)
    assert again.returncode == 0, again.stderr
    page = (out / "report.html").read_text()
    assert "Videos (1)" in parse(out / "report.html").text and "vid0000" not in page and "<th>true</th>" not in page


def test_report_escapes_text_and_links_odd_file_names(tmp_path):
    name = 'a<b>&"c #1 %'
    clip = write_clip(tmp_path / "videos" / f"{name}.avi")
    out = tmp_path / "out"
    Pictures(out).add(name, clip, caption="<script>document.title='x'</script> & more")
    page = write_report(out, title="<i>odd</i>")
    html = page.read_text(encoding="utf-8")
    assert "<script>" not in html and "&lt;script&gt;" in html and "<i>odd</i>" not in html
    assert "sheets/a%3Cb%3E%26%22c%20%231%20%25.png" in html
    count, broken = images_loaded(page)
    assert (count, broken) == (1, [])


def test_without_contact_sheets_the_cards_hold_the_captions_and_counts(tmp_path):
    clip = write_clip(tmp_path / "videos" / "clip.avi")
    refs = tmp_path / "refs.csv"
    refs.write_text("video_id,caption\nclip,a grey square brightens\n")
    out = tmp_path / "out"
    Pictures(out, sheets=False, references=str(refs)).add(
        "clip", clip, segments=[[0.0, 1.5, "it starts dark"], [1.5, 3.0, "it gets brighter"]], count=0.25)
    text = " ".join(parse(write_report(out)).text)
    for shown in ("it starts dark", "it gets brighter", "a grey square brightens", "0.25"):
        assert shown in text
    assert not (out / "sheets").exists()
