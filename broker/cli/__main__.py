"""`python -m broker.cli ...` is `brokerctl ...`."""

from broker.cli.main import main

main()
