"""Make the shared test helpers (torch_support.py) importable from the tests and the DDP script."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
