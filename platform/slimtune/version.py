"""The package version, in a module of its own: every stage records it without importing the
package's face (the Python API) for it. pyproject.toml holds the same string."""

__version__ = "0.1.0"
