"""Preparation: breast crop, lesion crops, splits by woman, the parallel resumable driver."""
