from workers.tasks import offers, orders

__all__ = ["offers", "orders"]
