"""gmp-edge: edge data acquisition and monitoring for GMP pharmaceutical plants.

One root package; its subpackages are the layers named in the README's "How it works".
"""
