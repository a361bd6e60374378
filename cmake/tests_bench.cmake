# Issue 19's benchmark tools under ctest: `m40-llm bench --batch` on the
# CPU with the synthetic fixture (in the ASan build too: the engine path it
# drives), and bench/serve-bench.py against a fake streaming server. Both are
# pytest files, also run by scripts/test.sh's pytest pass.
find_package(Python3 COMPONENTS Interpreter)
if(Python3_FOUND)
  execute_process(COMMAND ${Python3_EXECUTABLE} -c "import pytest"
                  RESULT_VARIABLE _m40_pytest_missing OUTPUT_QUIET ERROR_QUIET)
  if(_m40_pytest_missing EQUAL 0)
    foreach(t bench_batch serve_bench prefix_ttft)
      add_test(NAME py_${t}
               COMMAND ${Python3_EXECUTABLE} -m pytest -q -p no:cacheprovider tests/py/test_${t}.py
               WORKING_DIRECTORY ${CMAKE_SOURCE_DIR})
      set_tests_properties(py_${t} PROPERTIES TIMEOUT 300 LABELS bench
        ENVIRONMENT "M40LLM_BIN=$<TARGET_FILE:m40-llm>;M40LLM_FIXTURES=${M40_FIXTURES};LSAN_OPTIONS=suppressions=${CMAKE_SOURCE_DIR}/tests/lsan.supp")
    endforeach()
  else()
    message(STATUS "pytest not found: the bench tests (py_bench_batch, py_serve_bench, py_prefix_ttft) are not registered")
  endif()
endif()
