"""Fashion Studio."""
