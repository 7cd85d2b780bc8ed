# Fails the build when the PyTorch extension (SO) does not load the shared libstdc++ (python/CMakeLists.txt): a
# toolchain that links its own libstdc++ statically gives the extension a second, uninitialised copy of the C++
# streams beside the one torch loads, and it crashes (SIGSEGV in std::basic_ostream) on its first error message.
#   cmake -DSO=path/to/_C.so -DOBJDUMP=objdump -DCXX=compiler -DBUILD_DIR=folder -P check_shared_libstdcxx.cmake
execute_process(COMMAND "${OBJDUMP}" -p "${SO}" OUTPUT_VARIABLE dynamic_section RESULT_VARIABLE result)
if(NOT result EQUAL 0)
  message(FATAL_ERROR "w4a8moe: cannot read the dynamic section of ${SO} with ${OBJDUMP}")
endif()
if(NOT dynamic_section MATCHES "NEEDED +libstdc\\+\\+\\.so")
  message(FATAL_ERROR "w4a8moe: the compiler ${CXX} links libstdc++ statically, and an extension built so crashes "
                      "beside the libstdc++ that torch loads. Build with a compiler that links the system's "
                      "libstdc++.so: remove ${BUILD_DIR} (its cache keeps the compiler), then e.g. "
                      "`CXX=g++ pip install --no-build-isolation .`")
endif()
