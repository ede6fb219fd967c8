"""Networks: the frame encoder and the recurrent heads."""
from .encoder import EncoderError, FrameEncoder, build_backbone, feature_node, resolved_weights

__all__ = ["EncoderError", "FrameEncoder", "build_backbone", "feature_node", "resolved_weights"]
