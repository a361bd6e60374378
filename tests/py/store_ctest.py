"""ctest entry point (cmake/tests_store.cmake): the model store tests
(test_store.py, test_pull.py, test_serve_models.py, test_ps_stop_cli.py) against the m40-llm of
the build being tested, so the ASan/UBSan build runs them too. Every
download goes to a loopback mock of the Hugging Face API (hf_mock.py). Exit
77 (skipped) without pytest or SmolLM2."""
from ctest_pytest import run

run(["-rs", "test_store.py", "test_pull.py", "test_serve_models.py", "test_ps_stop_cli.py"])
