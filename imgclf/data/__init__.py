"""From a user's data folder to prepared arrays: find the layout, decode every file, split.

- layout: which classes and given splits the folder holds (`find_layout`, `DataError`)
- ingest: decode many files in parallel into rows, and pick `image_size: auto`
- split: which split each usable image goes to (stratified, deterministic, leak-free)
- decisions: the review's decisions (labels/decisions.csv), applied after the split
- prepared: the prepared splits on disk (`read_split`, `write_split`)
"""

from imgclf.data.layout import SPLITS, DataError, find_layout
from imgclf.data.prepared import PreparedSplit, read_split, write_split

__all__ = ["SPLITS", "DataError", "PreparedSplit", "find_layout", "read_split", "write_split"]
