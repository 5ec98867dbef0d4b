"""Composition root: typed configuration, pipeline wiring and the command line.

The only package that knows all the others.
"""
