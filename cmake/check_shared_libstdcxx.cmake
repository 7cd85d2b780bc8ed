# Fails the build when the PyTorch extension (SO) does not load the shared libstdc++ (python/CMakeLists.txt): a
# toolchain that links its own libstdc++ statically gives the extension a second, uninitialised copy of the C++
# streams beside the one torch loads, and it crashes (SIGSEGV in std::basic_ostream) on its first error message.
#   cmake -DSO=path/to/_C.so -DOBJDUMP=objdump -DCXX=compiler -DCUDA_HOST=compiler -DBUILD_DIR=folder -P <this file>
execute_process(COMMAND "${OBJDUMP}" -p "${SO}" OUTPUT_VARIABLE dynamic_section RESULT_VARIABLE result)
if(NOT result EQUAL 0)
  message(FATAL_ERROR "w4a8moe: cannot read the dynamic section of ${SO} with ${OBJDUMP}")
endif()
if(NOT dynamic_section MATCHES "NEEDED +libstdc\\+\\+\\.so")
  if(NOT CUDA_HOST)
    set(CUDA_HOST "nvcc's default, the gcc on PATH")
  endif()
  message(FATAL_ERROR "w4a8moe: the extension links libstdc++ statically, and so it would crash beside the "
                      "libstdc++ that torch loads. The C++ compiler (${CXX}) or the CUDA host compiler (${CUDA_HOST}, "
                      "whose library folders the link uses) belongs to a toolchain that links its own libstdc++. "
                      "Remove ${BUILD_DIR} (its cache keeps the compilers), then build with the system's: e.g. "
                      "`CXX=g++ CUDAHOSTCXX=g++ pip install --no-build-isolation .`")
endif()
