"""tomoseg: annotate cryo-electron tomograms with small per-feature CNNs.

The public API: one function per pipeline stage (pure, arrays in and out) and
the file-level workflows that join them with the file formats.
"""

from tomoseg.errors import Cancelled, TomosegError

__version__ = "0.1.0"

__all__ = ["Cancelled", "TomosegError", "__version__"]
