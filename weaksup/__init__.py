"""weaksup: weakly-supervised video pre-training datasets from hashtags (after IG-65M)."""

from weaksup.errors import InputError

__version__ = "0.1.0"
__all__ = ["InputError", "__version__"]
