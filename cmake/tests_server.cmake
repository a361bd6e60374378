# `m40-llm serve` end to end (tests/py/serve_ctest.py: test_serve.py and
# test_serve_robust.py) against this build's m40-llm, so the ASan/UBSan build
# runs them too (scripts/test.sh: ctest in build-asan). Third-party leaks are
# suppressed by tests/lsan.supp, with full unwinding so its patterns match.
find_package(Python3 COMPONENTS Interpreter)
if(Python3_FOUND)
  add_test(NAME serve_py COMMAND ${Python3_EXECUTABLE} ${CMAKE_SOURCE_DIR}/tests/py/serve_ctest.py
           WORKING_DIRECTORY ${CMAKE_SOURCE_DIR})
  set_tests_properties(serve_py PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 1200 LABELS serve
    ENVIRONMENT "M40LLM_BIN=$<TARGET_FILE:m40-llm>;LSAN_OPTIONS=suppressions=${CMAKE_SOURCE_DIR}/tests/lsan.supp;ASAN_OPTIONS=fast_unwind_on_malloc=0")
endif()
