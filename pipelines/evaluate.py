"""Score a caption or count prediction file against annotations into metrics.json."""
from __future__ import annotations

from omegaconf import DictConfig

from pipelines.common import EXIT_OK, hydra_app, print_score_notes, run_app
from vidrnn.evaluate import evaluate_captions, evaluate_counts
from vidrnn.files import n_videos, some_of
from vidrnn.outputs import not_an_input, output_format, write_json


def evaluate(cfg: DictConfig) -> int:
    output_format(cfg.output, (".json",), "metrics")  # before anything is read
    not_an_input(cfg.output, predictions=cfg.predictions, annotations=cfg.annotations, splits=cfg.splits)
    if cfg.task == "caption":
        result = evaluate_captions(cfg.predictions, cfg.annotations, split=cfg.split, splits=cfg.splits,
                                   meteor=cfg.meteor)
        corpus = result["corpus"]
        print_score_notes("evaluate", result)
    elif cfg.task == "count":
        result = evaluate_counts(cfg.predictions, cfg.annotations, split=cfg.split, splits=cfg.splits)
        corpus = {"MAE": result["MAE"], "RMSE": result["RMSE"]}
    else:
        raise ValueError(f"task must be caption or count, not {cfg.task!r}")
    write_json(cfg.output, result)
    print(f"evaluate: {n_videos(result['videos'])}: " + "  ".join(
        f"{k} {v:.4f}" if v is not None else f"{k} n/a" for k, v in corpus.items()))
    if result["missing"]:
        many = len(result["missing"]) > 1
        print(f"evaluate: {len(result['missing'])} annotated video{'s have' if many else ' has'} no prediction")
    if result["unknown"]:
        many = len(result["unknown"]) > 1
        print(f"evaluate: {len(result['unknown'])} prediction{'s name' if many else ' names'} no annotated video, "
              f"not scored ({some_of(result['unknown'])})")
    print(f"evaluate: written to {cfg.output}")
    return EXIT_OK


@hydra_app("evaluate")
def main(cfg: DictConfig) -> None:
    run_app(evaluate, cfg)


if __name__ == "__main__":
    main()
