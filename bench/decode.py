"""Caption decoding throughput: greedy versus batched beam search on the same model and features.

    python bench/decode.py [--quick] [--videos 256] [--frames 16] [--beam 5] [--batch 32] [--repeats 3] [--device auto]

Random-weight model and features of the default captioner's shape: the numbers measure decoding cost,
not caption quality. Every caption runs to --max-len words unless <eos> comes first.
"""
from __future__ import annotations

import argparse
import time

import torch
from measure import machine, parse_args, peak_rss_mib, reset_peak, sync

from vidrnn.device import resolve_device
from vidrnn.models.captioner import build_captioner
from vidrnn.models.decode import beam_search, greedy_decode

QUICK = {"videos": 64, "repeats": 1}


def rate(fn, feats: torch.Tensor, batch: int) -> float:
    sync(feats.device)
    start = time.perf_counter()
    for i in range(0, len(feats), batch):
        fn(feats[i:i + batch])
    sync(feats.device)
    return len(feats) / (time.perf_counter() - start)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--videos", type=int, default=256)
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--vocab", type=int, default=3000)
    ap.add_argument("--kind", default="attention")
    ap.add_argument("--beam", type=int, default=5)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--max-len", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=3)
    args = parse_args(ap, QUICK)
    device = resolve_device(args.device)
    torch.manual_seed(0)
    model = build_captioner(args.kind, args.dim, args.vocab, hidden=256, embed=128).eval().to(device)
    feats = torch.randn(args.videos, args.frames, args.dim, device=device)
    kw = {"bos": 1, "eos": 2, "max_len": args.max_len}
    with torch.inference_mode():
        rate(lambda x: greedy_decode(model, x, **kw), feats[: args.batch], args.batch)  # warm-up
        reset_peak()
        greedy = beam = 0.0
        for _ in range(args.repeats):  # in turn, the best kept: on a shared machine, others' load only slows
            greedy = max(greedy, rate(lambda x: greedy_decode(model, x, **kw), feats, args.batch))
            beam = max(beam, rate(lambda x: beam_search(model, x, beam=args.beam, **kw), feats, args.batch))
    print(f"# {machine(device)}, device {device}")
    print(f"# {args.kind} captioner, vocab {args.vocab}, {args.videos} videos x {args.frames} frames x {args.dim}, "
          f"batch {args.batch}, max_len {args.max_len}, best of {args.repeats}")
    print(f"greedy        {greedy:8.1f} videos/s")
    print(f"beam {args.beam:<2d}       {beam:8.1f} videos/s   ({greedy / beam:.1f}x greedy's time)")
    print(f"peak RSS {peak_rss_mib():.0f} MiB")


if __name__ == "__main__":
    main()
