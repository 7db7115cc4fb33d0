from workers.tasks import offers

__all__ = ["offers"]
