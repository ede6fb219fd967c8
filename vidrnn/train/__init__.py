"""Training: one loop for both tasks, and the runs that feed it from video folders."""
from .loop import TrainConfig, fit

__all__ = ["TrainConfig", "fit"]
