"""Data: dataset descriptions, readers, the demo generator and the one input formatter."""
