"""The reference provider agent: runs next to the provider's machines, registers their capacity with the broker and
runs the broker's jobs as local subprocesses. Stdlib only (no Django): `python -m workers.agent --help`, or
`manage.py provider_agent` in this repository."""
