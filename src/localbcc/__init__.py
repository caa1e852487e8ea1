__version__ = "0.1.0"

from . import compiled as _compiled

_compiled.install()  # an edited source is never shadowed by an older compiled build
