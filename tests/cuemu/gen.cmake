# gen.cmake — turns one CUDA source into C++ for the CUDA emulator (tests/cuemu):
#   cmake -DIN=kernels/cuda/bn.cu -DOUT=build/cuemu/bn.cc -P tests/cuemu/gen.cmake
# `k<<<grid, block, shared, stream>>>(args)` becomes
# `k | cuemu::cfg(grid, block, shared, stream) | cuemu::args(args)` and
# `extern __shared__ T name[];` a pointer to the launch's dynamic shared memory; nothing
# else changes, and #line keeps the original file and line numbers in messages.
file(READ "${IN}" s)
string(REGEX REPLACE "extern __shared__ ([A-Za-z_0-9 ]*[A-Za-z_0-9]) ([A-Za-z_0-9]+)\\[\\];"
       "\\1 *\\2 = (\\1 *)cuemu::dyn_shared();" s "${s}")
string(REPLACE "<<<" " | cuemu::cfg(" s "${s}")
string(REPLACE ">>>" ") | cuemu::args" s "${s}")
file(WRITE "${OUT}.tmp" "#include <cuda_runtime.h>\n#line 1 \"${IN}\"\n${s}")
file(COPY_FILE "${OUT}.tmp" "${OUT}" ONLY_IF_DIFFERENT)
file(REMOVE "${OUT}.tmp")
