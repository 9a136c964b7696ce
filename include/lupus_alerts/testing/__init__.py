"""Test-only code: local servers that replay recorded, real-format responses (E-utilities,
publishers' feeds) over real sockets.

The tests, the benchmarks and the demo (`make demo`, `make up`) use it; the pipeline itself
never imports it (tests/unit/test_package_layout.py checks this).
"""
