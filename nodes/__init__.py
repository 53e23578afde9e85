"""The node library, one module per family; importing it registers every node type.

Every public module of this package is imported, so a new family is just a new file here.
"""

import importlib as _importlib
import pkgutil as _pkgutil

for _module in sorted(m.name for m in _pkgutil.iter_modules(__path__) if not m.name.startswith("_")):
    _importlib.import_module(f"{__name__}.{_module}")
