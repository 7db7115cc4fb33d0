"""brokerctl, the command-line client of the broker's public API. Pure Python: click + requests, no Django."""
