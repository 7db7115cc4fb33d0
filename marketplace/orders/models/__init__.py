from marketplace.orders.models.capacity import CapacityUnit, Reservation
from marketplace.orders.models.orders import Order, OrderEvent, OrderLogChunk
from marketplace.orders.models.outbox import Lease, OutboxMessage

__all__ = ["CapacityUnit", "Lease", "Order", "OrderEvent", "OrderLogChunk", "OutboxMessage", "Reservation"]
