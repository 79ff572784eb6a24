"""Pure metric functions (no I/O) and report rendering."""
