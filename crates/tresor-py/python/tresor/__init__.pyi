from typing import Optional, TypeVar

from tresor._native import (
    Conflict as Conflict,
    Error as Error,
    IntegrityError as IntegrityError,
    InvalidInput as InvalidInput,
    Locked as Locked,
    NotFound as NotFound,
    Secret as Secret,
    Tresor as Tresor,
    Unavailable as Unavailable,
    __version__ as __version__,
    open as open,
)

_T = TypeVar("_T")

def resolve(value: _T, *, tresor: Optional[Tresor] = None) -> _T: ...
def render(obj: _T, *, tresor: Optional[Tresor] = None) -> _T: ...
