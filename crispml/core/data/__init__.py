"""Datasets, samples, profiles and preparation (the Data understanding and preparation pages)."""
