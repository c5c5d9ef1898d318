"""Tests of the pipeline: the real task graph into temporary folders, steps on real data."""
