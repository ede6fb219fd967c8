"""Video decoding (one frame-exact reader interface) and frame sampling."""
from .reader import BACKENDS, VideoError, VideoInfo, VideoReader, count_remaining, open_video, read_frames
from .sampling import MODES, Sampling
from .stream import Chunk, Restart, VideoMeta, stream_video

__all__ = ["BACKENDS", "MODES", "Chunk", "Restart", "Sampling", "VideoError", "VideoInfo", "VideoMeta",
           "VideoReader", "count_remaining", "open_video", "read_frames", "stream_video"]
