from workers.tasks import billing, offers, orders

__all__ = ["billing", "offers", "orders"]
