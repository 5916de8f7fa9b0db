"""BentoML services: batchable model workers and the public `Studio` gateway."""
