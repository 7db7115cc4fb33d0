from marketplace.models.accelerators import Accelerator
from marketplace.models.accounts import ApiToken, User
from marketplace.models.catalog_version import CatalogVersion
from marketplace.models.offers import Offer
from marketplace.models.providers import Provider
from marketplace.models.quotes import Quote
from marketplace.models.regions import Region

__all__ = ["Accelerator", "ApiToken", "CatalogVersion", "Offer", "Provider", "Quote", "Region", "User"]
