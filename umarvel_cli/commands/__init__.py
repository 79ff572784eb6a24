"""One thin module per sub-command: parse options, call one library function.

Heavy imports (torch, transformers, faiss) happen inside the command functions, so `umarvel --help`
stays fast.
"""
