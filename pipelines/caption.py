"""Caption every video in a folder with a trained checkpoint: JSON, CSV, or timed SRT/VTT."""
from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from pipelines.common import folder_options, hydra_app, print_score_notes, report, run_app, warn_unread_video_keys
from vidrnn.evaluate import evaluate_captions
from vidrnn.outputs import not_an_input, write_json
from vidrnn.pictures import Pictures
from vidrnn.predict import beside, caption_folder
from vidrnn.report import write_report


def caption(cfg: DictConfig) -> int:
    d = cfg.decode
    warn_unread_video_keys("caption")
    options = folder_options(cfg)
    not_an_input(cfg.output, references=cfg.references)
    pictures = Pictures(Path(cfg.output).parent, sheets=cfg.sheets, render=cfg.render, references=cfg.references,
                        backend=cfg.video.backend, workers=options["workers"], progress=not cfg.quiet)
    summary = caption_folder(
        cfg.input_dir, cfg.checkpoint, cfg.output, beam=d.beam, max_len=d.max_len, length_penalty=d.length_penalty,
        n_best=d.n_best, decode_batch=d.batch, window_s=cfg.window.window_s, stride_s=cfg.window.stride_s,
        pictures=pictures, **options)
    out = Path(cfg.output)
    scores = beside(cfg.output, "metrics.json")  # shown in the report
    scores.unlink(missing_ok=True)  # (an earlier run's)
    if cfg.references and not pictures.referenced:
        print(f"caption: warning: {cfg.references} has references for none of these videos (ids are file stems, "
              "or relative paths where stems repeat)")
    elif cfg.references and out.suffix.lower() in (".json", ".csv"):  # scored as evaluate scores them
        result = evaluate_captions(cfg.output, cfg.references, meteor=cfg.meteor)
        write_json(scores, result)
        print_score_notes("caption", result)
        print(f"caption: {result['videos']} with references, whatever their split (evaluate split=test scores one): "
              + "  ".join(f"{k} {v:.4f}" for k, v in result["corpus"].items() if v is not None) + f" -> {scores}")
    if cfg.report:
        page = write_report(pictures.dir, title=f"captions of {cfg.input_dir}", videos=summary.videos)
        print(f"caption: report {page}")
    return report("caption", summary, summary.output)


@hydra_app("caption")
def main(cfg: DictConfig) -> None:
    run_app(caption, cfg)


if __name__ == "__main__":
    main()
