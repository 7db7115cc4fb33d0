"""Operations: health endpoints, Prometheus metrics, request/order ids in logs, the worker heartbeat."""
