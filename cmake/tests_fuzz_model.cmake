# Short libFuzzer run of model loading (scripts/fuzz_model.sh), only where clang exists.
find_program(M40_CLANG_M NAMES clang clang-18 clang-17 clang-16 clang-15 clang-14)
if(M40_CLANG_M)
  add_test(NAME fuzz_model_short COMMAND ${CMAKE_SOURCE_DIR}/scripts/fuzz_model.sh 20
           WORKING_DIRECTORY ${CMAKE_SOURCE_DIR})
  set_tests_properties(fuzz_model_short PROPERTIES LABELS fuzz SKIP_RETURN_CODE 77 TIMEOUT 600
    ENVIRONMENT "CLANG=${M40_CLANG_M};M40LLM_FUZZ_DIR=${CMAKE_BINARY_DIR}/fuzz")
endif()
