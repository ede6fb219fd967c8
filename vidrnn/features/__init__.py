"""Frame features: encoding videos in batches, storing them, and the ``extract`` job."""
from .encode import Encoded, Failed, encode_videos
from .extract import ExtractSummary, extract_folder, storage_dtype
from .store import RunRecords, atomic_write, feature_path, load_features, save_features

__all__ = ["Encoded", "ExtractSummary", "Failed", "RunRecords", "atomic_write", "encode_videos",
           "extract_folder", "feature_path", "load_features", "save_features", "storage_dtype"]
