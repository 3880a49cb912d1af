"""Data sets on disk: where they live, their checksums, and how to get them."""

from longdeps.data.files import check_all, data_root, fetch, locate, sha256_of, verify
from longdeps.data.registry import DATASETS, DataFile, Dataset

__all__ = ["DATASETS", "DataFile", "Dataset", "check_all", "data_root", "fetch", "locate", "sha256_of", "verify"]
