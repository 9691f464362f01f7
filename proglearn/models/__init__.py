"""Bundled reference models. Importing this package imports no framework; each builder imports
torch/timm only when called."""
