# CUDA detection. Sets M40LLM_HAVE_CUDA and defines m40_cuda_configure_target().
#
# Architectures: the Tesla M40 is sm_52. Toolkits up to CUDA 12 still target
# it, so they build sm_52 machine code plus compute_52 PTX (the PTX lets the
# driver JIT for any newer GPU). CUDA 13 dropped Maxwell: then the lowest
# architecture it has (with its PTX) plus machine code for the GPUs that
# nvidia-smi lists on this machine.
# -DM40LLM_CUDA_ARCHS="52;61" overrides (CMake CUDA_ARCHITECTURES syntax).
set(M40LLM_HAVE_CUDA OFF)
set(M40LLM_CUDA_ARCHS "" CACHE STRING "CUDA architectures (empty = automatic)")
# static: the binaries need no libcudart at run time, only the driver
option(M40LLM_CUDART_STATIC "Link the CUDA runtime statically" OFF)
if(M40LLM_CUDA)
  include(CheckLanguage)
  check_language(CUDA)
  file(GLOB _m40_cu ${CMAKE_SOURCE_DIR}/src/cuda/*.cu)
  if(CMAKE_CUDA_COMPILER AND _m40_cu)
    if(NOT CMAKE_CUDA_ARCHITECTURES)
      # keep enable_language from probing a default that may not exist
      set(CMAKE_CUDA_ARCHITECTURES OFF)
    endif()
    enable_language(CUDA)
    find_package(CUDAToolkit REQUIRED)
    # the quantized GEMV's masked dot (src/cuda/wformat.cuh) multiplies
    # subnormal floats: flushing them to zero would zero the weights
    if(CMAKE_CUDA_FLAGS MATCHES "use_fast_math|ftz=true")
      message(FATAL_ERROR "m40llm: build CUDA without --use_fast_math / -ftz=true "
                          "(the quantized dot needs subnormal floats)")
    endif()
    set(M40LLM_HAVE_CUDA ON)
  else()
    message(STATUS "m40llm: no nvcc found, building the CPU backend only")
  endif()
endif()

if(M40LLM_HAVE_CUDA)
  if(M40LLM_CUDA_ARCHS)
    set(_m40_archs ${M40LLM_CUDA_ARCHS})
  elseif(CMAKE_CUDA_COMPILER_VERSION VERSION_LESS 13.0)
    set(_m40_archs 52)  # sm_52 SASS + compute_52 PTX
  else()
    # the oldest target this nvcc accepts
    execute_process(COMMAND ${CMAKE_CUDA_COMPILER} --list-gpu-arch
                    OUTPUT_VARIABLE _m40_list ERROR_QUIET RESULT_VARIABLE _m40_rc)
    string(REGEX MATCHALL "compute_[0-9]+" _m40_all "${_m40_list}")
    set(_m40_low 999)
    foreach(a ${_m40_all})
      string(REPLACE "compute_" "" n ${a})
      if(n LESS _m40_low)
        set(_m40_low ${n})
      endif()
    endforeach()
    if(_m40_low EQUAL 999)
      set(_m40_low 75)
    endif()
    set(_m40_archs ${_m40_low})
    # plus machine code for this machine's GPUs, read from nvidia-smi (CMake's
    # `native` needs 3.24 and some CMake/nvcc pairs pass it on as the invalid
    # compute_native); only those this nvcc can target
    find_program(_m40_smi nvidia-smi)
    if(_m40_smi)
      execute_process(COMMAND ${_m40_smi} --query-gpu=compute_cap --format=csv,noheader
                      OUTPUT_VARIABLE _m40_caps ERROR_QUIET RESULT_VARIABLE _m40_smi_rc)
      if(_m40_smi_rc EQUAL 0)
        string(REGEX MATCHALL "[0-9]+\\.[0-9]+" _m40_caps "${_m40_caps}")
        foreach(cap ${_m40_caps})
          string(REPLACE "." "" n ${cap})
          if("compute_${n}" IN_LIST _m40_all AND NOT n EQUAL _m40_low
             AND NOT "${n}-real" IN_LIST _m40_archs)
            list(APPEND _m40_archs ${n}-real)
          elseif(NOT "compute_${n}" IN_LIST _m40_all)
            message(STATUS "m40llm: this nvcc cannot target the GPU of compute capability "
                           "${cap} (build with CUDA <= 12 for sm_52)")
          endif()
        endforeach()
      endif()
    endif()
  endif()
  set(M40LLM_CUDA_ARCHS_USED "${_m40_archs}" CACHE INTERNAL "")
  message(STATUS "m40llm: CUDA ${CMAKE_CUDA_COMPILER_VERSION}, architectures ${_m40_archs}")
endif()

function(m40_cuda_configure_target tgt)
  if(NOT M40LLM_HAVE_CUDA)
    return()
  endif()
  set_target_properties(${tgt} PROPERTIES
    CUDA_ARCHITECTURES "${M40LLM_CUDA_ARCHS_USED}"
    CUDA_STANDARD 14
    CUDA_STANDARD_REQUIRED ON
    CUDA_SEPARABLE_COMPILATION OFF)
  target_compile_options(${tgt} PRIVATE
    $<$<COMPILE_LANGUAGE:CUDA>:-O3 -lineinfo -Xptxas=-warn-spills --expt-relaxed-constexpr>)
  target_compile_definitions(${tgt} PRIVATE M40LLM_HAVE_CUDA=1)
  # cuBLAS (prefill GEMMs) and NVML are opened at run time with dlopen:
  # linking cuBLAS maps ~200 MB into every process, and the toolkit does not
  # always ship NVML's stub. cuBLAS is looked for in this toolkit first.
  # A toolkit without cuBLAS (a runtime-only prefix) still builds: then only
  # the system's library path is searched.
  set(_m40_cublas_dir "")
  if(TARGET CUDA::cublas)
    get_target_property(_m40_cublas CUDA::cublas IMPORTED_LOCATION)
    get_filename_component(_m40_cublas_dir "${_m40_cublas}" DIRECTORY)
  endif()
  target_compile_definitions(${tgt} PRIVATE
    M40LLM_CUBLAS_DIR="${_m40_cublas_dir}"
    M40LLM_CUBLAS_SONAME="libcublas.so.${CUDAToolkit_VERSION_MAJOR}")
  if(M40LLM_CUDART_STATIC)
    target_link_libraries(${tgt} PUBLIC CUDA::cudart_static ${CMAKE_DL_LIBS} Threads::Threads)
  else()
    target_link_libraries(${tgt} PUBLIC CUDA::cudart ${CMAKE_DL_LIBS} Threads::Threads)
  endif()
endfunction()
