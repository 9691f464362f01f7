"""Thin adapters from training frameworks to the pure proglearn core.

Importable as ``proglearn.integrations.<name>``: ``torch`` (plain PyTorch loops, appliers and
data loading), ``lightning`` (a Lightning callback) and ``keras`` (a Keras 3 callback). Each
imports its framework only when it is itself imported.
"""
