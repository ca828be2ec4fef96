"""SymPy derivations behind the book's closed forms.

Each ``check_*`` function builds both sides of one identity from symbols,
returns the simplified difference (zero when the identity holds) and is called
by the book's chapters and by the tests alike. The labels name the boxes and
equations of the book.
"""

from flatrob.symbolic.base import *  # noqa: F403
from flatrob.symbolic.base import __all__ as _base
from flatrob.symbolic.bounds import *  # noqa: F403
from flatrob.symbolic.bounds import __all__ as _bounds
from flatrob.symbolic.closed_form import *  # noqa: F403
from flatrob.symbolic.closed_form import __all__ as _closed

__all__ = [*_base, *_closed, *_bounds]
