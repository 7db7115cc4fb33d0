"""A password hasher for the test process only: Django's PBKDF2-SHA256 with one iteration instead of 1,000,000.

Every user a test creates with a password (and every sign-in) hashes it: ~0.46 s each on these machines at
Django's default, which made up a large share of the suite's time. The algorithm name stays `pbkdf2_sha256` and the
encoded hash carries its own iteration count, so processes the tests start with the project's settings (web
servers, workers) verify these passwords as they verify any other, and the test process verifies hashes made by
them. The product's settings are untouched: broker.settings keeps Django's default hashers.
"""

from __future__ import annotations

from django.contrib.auth.hashers import PBKDF2PasswordHasher


class OneIterationPBKDF2PasswordHasher(PBKDF2PasswordHasher):
    iterations = 1
