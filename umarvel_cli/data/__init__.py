"""Data: dataset descriptions, readers, the demo generator and the record type they produce."""
