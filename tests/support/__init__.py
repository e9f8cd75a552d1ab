"""What the tests share besides fixtures: seeded test models, the engine-ran checks, and ``require`` (a missing
backend is a skip locally and a failure under CI)."""
