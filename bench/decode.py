"""Caption decoding throughput: greedy versus batched beam search on the same model and features.

    python bench/decode.py [--videos 256] [--frames 16] [--beam 5] [--batch 32]

Random-weight model and features of the default captioner's shape: the numbers measure decoding cost,
not caption quality. Every caption runs to --max-len words unless <eos> comes first.
"""
from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from vidrnn.models.captioner import build_captioner  # noqa: E402
from vidrnn.models.decode import beam_search, greedy_decode  # noqa: E402


def rate(fn, feats: torch.Tensor, batch: int) -> float:
    start = time.perf_counter()
    for i in range(0, len(feats), batch):
        fn(feats[i:i + batch])
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
    args = ap.parse_args()
    torch.manual_seed(0)
    model = build_captioner(args.kind, args.dim, args.vocab, hidden=256, embed=128).eval()
    feats = torch.randn(args.videos, args.frames, args.dim)
    kw = dict(bos=1, eos=2, max_len=args.max_len)
    with torch.inference_mode():
        rate(lambda x: greedy_decode(model, x, **kw), feats[: args.batch], args.batch)  # warm-up
        greedy = rate(lambda x: greedy_decode(model, x, **kw), feats, args.batch)
        beam = rate(lambda x: beam_search(model, x, beam=args.beam, **kw), feats, args.batch)
    print(f"# {platform.machine()}, torch {torch.__version__}, {torch.get_num_threads()} threads, CPU")
    print(f"# {args.kind} captioner, vocab {args.vocab}, {args.videos} videos x {args.frames} frames x {args.dim}, "
          f"batch {args.batch}, max_len {args.max_len}")
    print(f"greedy        {greedy:8.1f} videos/s")
    print(f"beam {args.beam:<2d}       {beam:8.1f} videos/s   ({greedy / beam:.1f}x greedy's time)")


if __name__ == "__main__":
    main()
