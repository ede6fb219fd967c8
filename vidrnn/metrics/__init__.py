"""Evaluation metrics: caption scores equal to pycocoevalcap's, and people-count errors."""
from .captioning import (CAPTION_METRICS, METEOR_JAR, METEOR_NLTK, MeteorResult, bleu, cider_d, meteor, rouge_l,
                         score_captions, tokenize)
from .counting import count_errors, mean_predictor_errors

__all__ = ["CAPTION_METRICS", "METEOR_JAR", "METEOR_NLTK", "MeteorResult", "bleu", "cider_d", "count_errors",
           "mean_predictor_errors", "meteor", "rouge_l", "score_captions", "tokenize"]
