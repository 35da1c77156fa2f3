"""Pure DataFrame -> DataFrame helpers over a crawl, chainable with ``.pipe``."""

from .duplicates import duplicates
from .plots import byte_unit, plot_age, plot_layer_sharing, plot_storage
from .policies import EcrPolicy, EcrRule, GitLabPolicy, HarborPolicy, HarborRule, RetentionPolicy
from .stale import stale
from .usage import blob_references, reclaimable, storage_usage

__all__ = [
    "EcrPolicy",
    "EcrRule",
    "GitLabPolicy",
    "HarborPolicy",
    "HarborRule",
    "RetentionPolicy",
    "blob_references",
    "byte_unit",
    "duplicates",
    "plot_age",
    "plot_layer_sharing",
    "plot_storage",
    "reclaimable",
    "stale",
    "storage_usage",
]
