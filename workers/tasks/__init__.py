from workers.tasks import agents, billing, offers, orders

__all__ = ["agents", "billing", "offers", "orders"]
