from setuptools import Extension, setup

# afd_mm/ops/csrc/descriptors.c: g(h) and v(h) in one pass on CPU. Optional:
# without a C compiler the install succeeds and PyTorch does the work.
setup(ext_modules=[
    Extension('afd_mm.ops._descriptors', ['afd_mm/ops/csrc/descriptors.c'],
              extra_compile_args=['-O3', '-fopenmp-simd'], optional=True)
])
