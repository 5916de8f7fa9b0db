"""LoRA adapters for the studio's generators: training on a shop's captioned images (`train`), reading
such a folder (`data`), and the demonstration that an adapter teaches fashion-mini a pattern it never
saw (`demo`, measured by the pattern detector in `detect`)."""
