"""Frame features: encoding videos in batches, storing them, and the ``extract`` job."""
from .encode import Encoded, Failed, Mapped, VideoBar, encode_videos, map_frames
from .extract import ExtractSummary, extract_folder, storage_dtype
from .store import RunRecords, atomic_write, feature_path, load_features, save_features

__all__ = ["Encoded", "ExtractSummary", "Failed", "Mapped", "RunRecords", "VideoBar", "atomic_write", "encode_videos",
           "extract_folder", "feature_path", "load_features", "map_frames", "save_features", "storage_dtype"]
