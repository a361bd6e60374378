# cmake --install: the m40-llm binary, the static library, the public header,
# a pkg-config file and the README as documentation. cpack -G DEB packages
# the same; a CUDA build then recommends Debian's cuBLAS (opened at run time
# with dlopen, so not a hard dependency) and, when the CUDA runtime is linked
# dynamically, depends on Debian's libcudart package of that CUDA version.
include(GNUInstallDirs)
install(TARGETS m40-llm m40-synth RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(TARGETS m40llm ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR})
install(FILES ${CMAKE_SOURCE_DIR}/include/m40llm.h DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(FILES ${CMAKE_SOURCE_DIR}/README.md DESTINATION ${CMAKE_INSTALL_DATAROOTDIR}/doc/m40-llm)

set(M40_PC_LIBS_PRIVATE "-lpthread -lm")
if(CMAKE_DL_LIBS)
  string(APPEND M40_PC_LIBS_PRIVATE " -l${CMAKE_DL_LIBS}")
endif()
if(M40LLM_HAVE_CUDA)
  # the user's own toolkit provides the runtime (Debian: nvidia-cuda-dev)
  if(M40LLM_CUDART_STATIC)
    string(APPEND M40_PC_LIBS_PRIVATE " -lcudart_static -lrt")
  else()
    string(APPEND M40_PC_LIBS_PRIVATE " -lcudart")
  endif()
endif()
# relocatable: the package installs under /usr, a local install elsewhere
file(RELATIVE_PATH M40_PC_TO_PREFIX "/${CMAKE_INSTALL_LIBDIR}/pkgconfig" "/")
configure_file(${CMAKE_SOURCE_DIR}/cmake/m40llm.pc.in ${CMAKE_BINARY_DIR}/m40llm.pc @ONLY)
install(FILES ${CMAKE_BINARY_DIR}/m40llm.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)

set(CPACK_PACKAGE_NAME m40-llm)
set(CPACK_PACKAGE_VENDOR "m40-llm")
set(CPACK_PACKAGE_CONTACT "m40-llm maintainers <m40-llm@localhost>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "LLM inference runtime for the NVIDIA Tesla M40 (Maxwell)")
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION science)
# libc, cJSON, PCRE2, libedit from the binary's own needs
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
if(M40LLM_HAVE_CUDA)
  set(CPACK_DEBIAN_PACKAGE_RECOMMENDS "libcublas${CUDAToolkit_VERSION_MAJOR}, libcuda1")
  if(NOT M40LLM_CUDART_STATIC)
    set(CPACK_DEBIAN_PACKAGE_DEPENDS "libcudart${CUDAToolkit_VERSION_MAJOR}.0")
  endif()
endif()
include(CPack)
