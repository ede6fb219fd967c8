"""Extraction speed: decode-only, CNN-only and end-to-end frames/s for each encoder and video size.

    python bench/extract.py [--quick] [--models resnet18 resnet50] [--videos-at 320x240 640x480 1280x720]
                            [--seconds 6] [--repeats 2] [--videos 6] [--frames 100] [--fps 5] [--workers 2]
                            [--batch 32] [--threads 0] [--device auto] [--no-amp]

Each case (encoder x video size, frames resized to --size squared) runs in a fresh process on the same
generated mp4 files, read as many times as make the end-to-end run last about --seconds (so that filling
and draining the pipeline weighs little, as over a real folder): CNN-only (the encoder on one batch
already in memory: torchvision's network as built, then as extraction runs it, BatchNorm folded),
decode-only (the extraction's decode workers, no CNN), then end to end
(``encode_videos``, what ``extract`` runs). The three take turns --repeats times; frames/s are the best
of the rounds (on a shared machine others' load only slows), the ratios the mean of each round's
end-to-end against the bounds measured just before it. Frames/s counts sampled frames (the frames the
CNN sees); every frame is decoded, since decoding is sequential.

Bounds: min(decode, CNN) is the limit when decoding and the CNN have their own hardware (a GPU, or with
--threads 1 one core for the CNN while the decode workers take the others); when both use every core
they share them, and 1 / (1/decode + 1/CNN) is the limit. Waits: the share of the end-to-end time the main
process spent waiting for decoded frames; where end to end falls short of decode-only and this is low, the
process that feeds the CNN is the limit, not the decoders. RSS: the main process after loading torch and
the encoder (base), its peak in the first round's CNN-only and end-to-end stages (the CNN's activations,
batches, queued chunks), and how far the hungriest decode worker grew above what it shared with its parent.
"""
from __future__ import annotations

import argparse
import itertools
import json
import math
import multiprocessing as mp
import tempfile
import time
from pathlib import Path

import torch
from measure import (
    machine,
    make_videos,
    parse_args,
    peak_rss_mib,
    reset_peak,
    rss_mib,
    run_case,
    sync,
)
from torch.utils.data import DataLoader

from vidrnn.device import resolve_device
from vidrnn.features import encode as encode_module
from vidrnn.features.encode import _init_worker, _VideoStreams, encode_videos
from vidrnn.models import FrameEncoder
from vidrnn.video import Sampling

QUICK = {"videos": 2, "frames": 50, "seconds": 1.5, "repeats": 1}


class _MeasuredStreams(_VideoStreams):
    """The extraction's decode worker, ending with a ("grown", MiB) message: how far its resident memory
    rose above what it had on starting (pages shared with the parent not counted)."""

    def __iter__(self):
        reset_peak()
        start = rss_mib()
        yield from super().__iter__()
        yield "grown", peak_rss_mib() - start


def decode_only(videos, sampling, size, workers, backend) -> tuple[float, int, float]:
    """Frames/s and frames of the decode workers alone, and the most any worker's memory grew (MiB)."""
    reading = mp.Array("q", [-1] * max(workers, 1), lock=False)  # as encode_videos gives its workers
    loader = DataLoader(_MeasuredStreams(videos, sampling, size, backend, chunk=32, reading=reading), batch_size=None,
                        num_workers=workers, worker_init_fn=_init_worker, prefetch_factor=4 if workers else None)
    start, n, grown = time.perf_counter(), 0, 0.0
    for msg in loader:
        if msg[0] == "chunk":
            n += len(msg[2])
        elif msg[0] == "grown":
            grown = max(grown, msg[1])
    return n / (time.perf_counter() - start), n, grown


def cnn_only(encoder, device, seconds: float, batch: int, size: int, amp: bool) -> float:
    """Frames/s of the encoder on one uint8 batch already in (pinned, on CUDA) memory, for ``seconds``."""
    encoder = encoder.to(device).eval()
    if device.type == "cpu":
        encoder = encoder.to(memory_format=torch.channels_last)
    x = torch.randint(0, 256, (batch, size, size, 3), dtype=torch.uint8)  # (B, S, S, 3)
    if device.type == "cuda":
        x = x.pin_memory()
    with torch.inference_mode(), torch.autocast(device.type, enabled=device.type == "cuda" and amp):
        encoder(x.to(device)).float().cpu()  # warm-up
        sync(device)
        start, done = time.perf_counter(), 0
        while time.perf_counter() - start < seconds:
            encoder(x.to(device, non_blocking=True)).float().cpu()  # .cpu() waits for the GPU
            done += batch
    return done / (time.perf_counter() - start)


class _WaitedLoader(DataLoader):
    """The extraction's DataLoader, adding up how long the main process waits for the decode workers."""

    waited = 0.0

    def __iter__(self):
        messages = super().__iter__()
        while True:
            start = time.perf_counter()
            msg = next(messages, None)
            _WaitedLoader.waited += time.perf_counter() - start
            if msg is None:
                return
            yield msg


def end_to_end(videos, encoder, sampling, size, workers, batch, device, backend, amp) -> tuple[float, float]:
    """Frames/s of ``encode_videos``, and the share of its time the main process (which feeds the CNN)
    waited for decoded frames: near 1 the decoders are the bound, near 0 the main process is."""
    encode_module.DataLoader, _WaitedLoader.waited = _WaitedLoader, 0.0
    start, n = time.perf_counter(), 0
    for res in encode_videos(videos, encoder, sampling, size=size, backend=backend, batch_size=batch,
                             workers=workers, device=device, amp=amp):
        n += res.features.shape[0] * (res.features.shape[1] if res.features.ndim == 3 else 1)
    elapsed = time.perf_counter() - start
    return n / elapsed, _WaitedLoader.waited / elapsed


def one_case(c: dict) -> dict:
    """The three stages of one case, in turn ``repeats`` times (see the module's docstring)."""
    if c["threads"]:
        torch.set_num_threads(c["threads"])
    device = resolve_device(c["device"])
    files = [(p.name, str(p)) for p in sorted(Path(c["folder"]).iterdir())]
    sampling = Sampling(mode="fps", fps=c["fps"])
    encoder = FrameEncoder(c["model"])
    rounds, rss = [], {"base": rss_mib()}

    def decode(videos):
        return decode_only(videos, sampling, c["size"], c["workers"], c["backend"])

    def peak(stage: str) -> None:
        rss.setdefault(stage, peak_rss_mib())
        reset_peak()

    reset_peak()
    videos = files
    for _ in range(c["repeats"]):
        as_built = cnn_only(encoder, device, c["seconds"], c["batch"], c["size"], c["amp"])
        cnn = cnn_only(encoder.for_inference(), device, c["seconds"], c["batch"], c["size"], c["amp"])
        peak("cnn")
        dec, frames, grown = decode(videos)
        while frames / min(dec, cnn) < 0.5 * c["seconds"]:  # more reads, till end to end lasts about ``seconds``
            reads = math.ceil(len(videos) * c["seconds"] * min(dec, cnn) / frames)
            videos = [(f"{name}#{k}", path) for k, (name, path) in zip(range(reads), itertools.cycle(files))]
            dec, frames, grown = decode(videos)
        rss.setdefault("worker", grown)
        reset_peak()
        e2e, waits = end_to_end(videos, encoder, sampling, c["size"], c["workers"], c["batch"], device, c["backend"],
                                c["amp"])
        peak("e2e")
        rounds.append({"decode": dec, "as_built": as_built, "cnn": cnn, "e2e": e2e, "vs_min": e2e / min(dec, cnn),
                       "vs_shared": e2e * (1 / dec + 1 / cnn), "waits": waits})
    out = {k: max(r[k] for r in rounds) for k in ("decode", "as_built", "cnn", "e2e")}
    out.update({k: sum(r[k] for r in rounds) / len(rounds) for k in ("vs_min", "vs_shared", "waits")})
    return {"reads": len(videos), "frames": frames, **out, "rss": rss, "machine": machine(device)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=["resnet18", "resnet50"])
    ap.add_argument("--videos-at", nargs="+", default=["320x240", "640x480", "1280x720"], metavar="WxH")
    ap.add_argument("--size", type=int, default=224, help="frames are resized to size x size")
    ap.add_argument("--seconds", type=float, default=6.0, help="about how long each stage of a round runs")
    ap.add_argument("--repeats", type=int, default=2, help="rounds of the three stages")
    ap.add_argument("--videos", type=int, default=6, help="video files generated per size")
    ap.add_argument("--frames", type=int, default=100, help="frames per generated video (25 fps)")
    ap.add_argument("--fps", type=float, default=5.0, help="sampling: frames per second of video")
    ap.add_argument("--workers", type=int, default=2, help="decode processes")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--backend", default="auto")
    ap.add_argument("--no-amp", dest="amp", action="store_false", help="CUDA: no autocast")
    ap.add_argument("--case", help=argparse.SUPPRESS)  # internal: run one case, print JSON
    args = parse_args(ap, QUICK)
    if args.case:
        print(json.dumps(one_case(json.loads(args.case))))
        return
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for at in args.videos_at:
            width, height = map(int, at.split("x"))
            folder = Path(tmp, at)
            make_videos(folder, args.videos, width, height, args.frames)
            for model in args.models:
                case = {"model": model, "folder": str(folder), "size": args.size, "fps": args.fps,
                        "workers": args.workers, "batch": args.batch, "seconds": args.seconds, "repeats": args.repeats,
                        "threads": args.threads, "backend": args.backend,
                        "device": args.device, "amp": args.amp}
                rows.append((model, at, run_case(__file__, case)))
    print(f"# {rows[0][2]['machine']}")
    print(f"# {args.videos} mp4 files per size, {args.frames} frames at 25 fps, sampled at {args.fps:g} fps, "
          f"resized to {args.size}x{args.size}; batch {args.batch}, {args.workers} decode workers, "
          f"device {args.device}{'' if args.amp else ', no AMP'}; {args.repeats} rounds of ~{args.seconds:g} s stages")
    print(f"{'model':9s} {'video':>9s} {'reads':>5s} {'frames':>6s} {'decode':>8s} {'as built':>8s} {'cnn':>7s} "
          f"{'e2e':>7s} {'e2e/min':>7s} {'e2e/shared':>10s} {'waits':>5s}  RSS MiB: base, peak cnn / e2e, worker +")
    for model, at, r in rows:
        d, c, e = r["decode"], r["cnn"], r["e2e"]
        m = r["rss"]
        print(f"{model:9s} {at:>9s} {r['reads']:5d} {r['frames']:6d} {d:8.1f} {r['as_built']:8.1f} {c:7.1f} {e:7.1f} "
              f"{r['vs_min']:7.3f} {r['vs_shared']:10.3f} {r['waits']:5.0%}  {m['base']:4.0f}, {m['cnn']:4.0f} / "
              f"{m['e2e']:4.0f}, +{m['worker']:.0f}")
    print("(reads: videos read per stage; frames: sampled frames per stage; frames/s, best of the rounds; "
          "as built: torchvision's network as it is; cnn: with its BatchNorms folded into the convolutions, as "
          "extraction runs it; e2e/min, e2e/shared: mean over rounds of end-to-end against the bounds measured next "
          "to it; min = min(decode, cnn), the bound with separate hardware; shared = 1/(1/decode + 1/cnn), the bound "
          "when both share the CPU cores; waits: share of the end-to-end time the main process waited for "
          "decoded frames, mean over rounds: low means the main process, not decoding, is the limit)")


if __name__ == "__main__":
    main()
