"""Fused GPU kernels (Triton), each with a pure-torch reference beside it.

Importing this package never imports triton; modules that need it import it lazily.
"""
