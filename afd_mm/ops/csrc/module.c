/*
 * afd_mm.ops._kernels: afd_mm's C kernels (descriptors.c,
 * linked_distance.c), called through ctypes (afd_mm/ops/_library.py, which
 * releases the GIL for each call). This module init only lets setuptools
 * build the library as an ordinary extension and Python find it.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

static struct PyModuleDef afd_kernels_module = {
    PyModuleDef_HEAD_INIT, "_kernels",
    "afd_mm's C kernels, called through ctypes (afd_mm/ops/_library.py).",
    -1, NULL, NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__kernels(void)
{
    return PyModule_Create(&afd_kernels_module);
}
