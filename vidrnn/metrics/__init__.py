"""Evaluation metrics: caption scores equal to pycocoevalcap's, and people-count errors."""
from ..text import tokenize
from .captioning import (CAPTION_METRICS, METEOR_JAR, METEOR_NLTK, MeteorResult, bleu, cider_d, meteor, rouge_l,
                         score_captions)
from .counting import count_errors, mean_predictor_errors
from .tokens import PTB_JAR, PTB_NLTK, coco_tokens

__all__ = ["CAPTION_METRICS", "METEOR_JAR", "METEOR_NLTK", "PTB_JAR", "PTB_NLTK", "MeteorResult", "bleu", "cider_d",
           "coco_tokens", "count_errors", "mean_predictor_errors", "meteor", "rouge_l", "score_captions", "tokenize"]
