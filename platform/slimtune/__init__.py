"""slimtune: make transformer text classifiers small and fast for the edge, on Ray.

Import the stage you need (`slimtune.data`, `slimtune.models`, `slimtune.train`); the package
root stays light so that `slimtune --help` and input checks answer within a second.
"""

__version__ = "0.1.0"

from slimtune.errors import SlimtuneError

__all__ = ["SlimtuneError", "__version__"]
