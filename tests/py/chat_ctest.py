"""ctest entry point (cmake/tests_cli.cmake): the interactive chat tests of
test_run.py (a pseudo-terminal driving `m40-llm run SmolLM2`: /set, questions,
/clear, Ctrl-C, /bye) plus the chat checks of test_hardening_cli.py, against
the m40-llm of the build being tested. In the ASan/UBSan build this is the
chat's memory and leak check: the tests require exit status 0, which a
sanitizer report turns into 1. Exit 77 (skipped) without pytest or the model."""
from ctest_pytest import run

run(["test_run.py", "test_hardening_cli.py", "-k", "interactive"])
