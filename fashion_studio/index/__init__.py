"""The product index: catalog articles as CLIP vectors with their metadata, for similar-product search.

`ProductIndex` (product_index.py) embeds and queries; the stores it runs over are the embedded folder
(local.py, the default) and a Qdrant cluster by URL (qdrant.py); records.py holds what they store and
answer; demo.py renders a demo shop; cli.py is `fashion-studio index`.
"""

from fashion_studio.index.local import IndexMissingError, LocalStore
from fashion_studio.index.product_index import BuildReport, ProductIndex, fuse, open_store
from fashion_studio.index.records import Entry, Filters, Hit, product_text

__all__ = ["BuildReport", "Entry", "Filters", "Hit", "IndexMissingError", "LocalStore", "ProductIndex", "fuse", "open_store", "product_text"]
