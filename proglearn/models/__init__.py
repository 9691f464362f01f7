"""Bundled reference models. Importing this package imports no framework; each builder imports
torch/timm only when called."""

from .efficientnetv2 import VARIANTS, VariantInfo, efficientnetv2, variant_info

__all__ = ["VARIANTS", "VariantInfo", "efficientnetv2", "variant_info"]
