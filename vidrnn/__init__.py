"""vidrnn: folders of videos -> CNN frame features -> recurrent networks for captions and people counts."""
import os

os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # keep FFmpeg's decoder chatter off users' consoles

__version__ = "0.1.0"
