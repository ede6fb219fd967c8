"""Annotation files: captions (MSR-VTT, COCO, VATEX, MSVD, CSV), people counts (CSV, MOT) and matching them
to videos."""
from .annotations import (AnnotationError, CaptionSet, MatchReport, apply_splits, load_captions, load_splits,
                          match_videos, normalize_split)
from .labels import CountLabels, fill_gaps, load_clip_counts, load_count_labels, load_frame_counts, load_mot

__all__ = ["AnnotationError", "CaptionSet", "CountLabels", "MatchReport", "apply_splits", "fill_gaps", "load_captions",
           "load_clip_counts", "load_count_labels", "load_frame_counts", "load_mot", "load_splits", "match_videos",
           "normalize_split"]
