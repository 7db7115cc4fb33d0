"""Readers for external price catalogs (pure Python: no Django).

Each reader turns a catalog folder into frozen `CatalogOffer`s plus an `ImportReport` that says what was read,
what was skipped and why; `marketplace.services.catalog_import` writes them to the database.
"""

from broker.catalogs.model import CatalogError, CatalogOffer, CloudReport, ImportReport

__all__ = ["CatalogError", "CatalogOffer", "CloudReport", "ImportReport"]
