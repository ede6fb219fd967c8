"""vidrnn: folders of videos -> CNN frame features -> recurrent networks for captions and people counts."""
import os

# keep FFmpeg's and OpenCV's chatter on a bad file off users' consoles (each bad file gets our one line)
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
os.environ.setdefault("OPENCV_LOG_LEVEL", "SILENT")

__version__ = "0.1.0"
