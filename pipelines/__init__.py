"""Kubeflow pipeline definitions (``training.py``) and their compiled IR YAML."""
