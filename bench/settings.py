"""Settings for the benchmark server only: the product's settings with the bare comparison view added."""

from broker.settings import *  # noqa: F403

ROOT_URLCONF = "bench.bare_urls"
