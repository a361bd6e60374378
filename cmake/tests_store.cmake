# The model store, pull and serve's on-demand loading (issue 20) end to end:
# tests/py/store_ctest.py runs test_store.py, test_pull.py and
# test_serve_models.py against this build's m40-llm and a loopback mock of
# the Hugging Face API, so the ASan/UBSan build runs them too. Third-party
# leaks are suppressed by tests/lsan.supp, with full unwinding so its
# patterns match.
find_package(Python3 COMPONENTS Interpreter)
if(Python3_FOUND)
  add_test(NAME store_py COMMAND ${Python3_EXECUTABLE} ${CMAKE_SOURCE_DIR}/tests/py/store_ctest.py
           WORKING_DIRECTORY ${CMAKE_SOURCE_DIR})
  set_tests_properties(store_py PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 900 LABELS store
    ENVIRONMENT "M40LLM_BIN=$<TARGET_FILE:m40-llm>;LSAN_OPTIONS=suppressions=${CMAKE_SOURCE_DIR}/tests/lsan.supp;ASAN_OPTIONS=fast_unwind_on_malloc=0")
endif()
