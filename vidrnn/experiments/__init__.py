"""Teaching experiments run with the project's own models and training loop."""
