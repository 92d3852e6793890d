"""Shared test fixtures: the real UTKFace faces in ../shared/data/utkface (skipped when absent)."""

import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
UTKFACE = os.environ.get("FACEAGE_UTKFACE", os.path.join(ROOT, "..", "shared", "data", "utkface"))
HAVE_UTKFACE = os.path.isdir(UTKFACE) and len(os.listdir(UTKFACE)) > 100
needs_utkface = pytest.mark.skipif(
    not HAVE_UTKFACE, reason=f"real faces not found at {UTKFACE} (set FACEAGE_UTKFACE to a UTKFace folder)"
)


@pytest.fixture(scope="session")
def utkface_dir():
    if not HAVE_UTKFACE:
        pytest.skip(f"real faces not found at {UTKFACE} (set FACEAGE_UTKFACE to a UTKFace folder)")
    return UTKFACE


@pytest.fixture(scope="session")
def utkface_files(utkface_dir):
    """A fixed, varied sample of 64 real face files (every 300th name)."""
    names = sorted(n for n in os.listdir(utkface_dir) if n.endswith(".jpg"))
    return [os.path.join(utkface_dir, n) for n in names[::300][:64]]
