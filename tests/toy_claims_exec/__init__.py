"""Toy claims for the executor and cache tests (numpy only): a cell that naps, and cells that
crash their worker, raise KeyboardInterrupt or fail — once (a marker file remembers it) or
every time. The switches are instance attributes, so they travel with the pickled claim to
worker processes; with none set, every cell just computes."""
