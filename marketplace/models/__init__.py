from marketplace.models.accelerators import Accelerator
from marketplace.models.accounts import ApiToken, User
from marketplace.models.offers import Offer
from marketplace.models.providers import Provider
from marketplace.models.regions import Region

__all__ = ["Accelerator", "ApiToken", "Offer", "Provider", "Region", "User"]
