# Short libFuzzer run of JSON mode's schema compiler and automata
# (scripts/fuzz_json.sh), only where clang exists.
find_program(M40_CLANG_J NAMES clang clang-18 clang-17 clang-16 clang-15 clang-14)
if(M40_CLANG_J)
  add_test(NAME fuzz_json_short COMMAND ${CMAKE_SOURCE_DIR}/scripts/fuzz_json.sh 20
           WORKING_DIRECTORY ${CMAKE_SOURCE_DIR})
  set_tests_properties(fuzz_json_short PROPERTIES LABELS fuzz SKIP_RETURN_CODE 77 TIMEOUT 300
    ENVIRONMENT "CLANG=${M40_CLANG_J};M40LLM_FUZZ_DIR=${CMAKE_BINARY_DIR}/fuzz")
endif()
