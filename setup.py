from setuptools import Extension, setup

# afd_mm/ops/csrc: g(h) and v(h) in one pass, and L_AFD's distances with
# their gradients, on CPU. Optional: without a C compiler the install
# succeeds and PyTorch does the work.
setup(ext_modules=[
    Extension(
        'afd_mm.ops._kernels', [
            'afd_mm/ops/csrc/module.c', 'afd_mm/ops/csrc/descriptors.c',
            'afd_mm/ops/csrc/linked_distance.c'
        ],
        depends=['afd_mm/ops/csrc/common.h'],
        extra_compile_args=['-O3', '-fopenmp-simd'],
        optional=True)
])
