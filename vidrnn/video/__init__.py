"""Video decoding (one frame-exact reader interface) and frame sampling."""
from .reader import (BACKENDS, VideoError, VideoInfo, VideoReader, count_remaining, failure_reason, next_frame,
                     open_video, read_frames)
from .sampling import MODES, Sampling
from .stream import (Chunk, Restart, VideoMeta, arrange, decoded_edges, frame_edges, read_sampled, stream_video,
                     window_bounds)

__all__ = ["BACKENDS", "MODES", "Chunk", "Restart", "Sampling", "VideoError", "VideoInfo", "VideoMeta",
           "VideoReader", "arrange", "failure_reason", "count_remaining", "decoded_edges", "frame_edges", "next_frame",
           "open_video", "read_frames", "read_sampled", "stream_video", "window_bounds"]
