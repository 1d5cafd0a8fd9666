"""show_config, threads, the SIMD switch and the CPU model."""
import io
import subprocess
import sys
import tempfile
import warnings

import pytest

import fastconv
from fastconv.config import cpu_model, cpu_model_from_cpuinfo

from conftest import OPENMP, subprocess_env, threads_in_effect


def test_show_config_reports_the_build():
    out = io.StringIO()
    fastconv.show_config(file=out)
    text = out.getvalue()
    for word in ("fastconv 0.2.0", "compiler", "openmp", "threads", "simd"):
        assert word in text
    assert f"threads   {fastconv.get_num_threads()}" in text
    assert f"simd      {fastconv.get_simd()} (cpu has avx2+fma:" in text
    assert ("openmp    on" in text) == fastconv._ext.have_openmp()


def test_set_num_threads_above_one_warns_only_in_a_serial_build(threads):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fastconv.set_num_threads(2)
    serial = [w for w in caught if "built without OpenMP" in str(w.message)]
    assert len(serial) == (0 if OPENMP else 1)
    assert fastconv.get_num_threads() == threads_in_effect(2)


def run_python(code, **env):
    """Run code in a child Python started outside the source tree."""
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=subprocess_env(**env), cwd=tempfile.gettempdir(),
                          check=True).stdout.strip()


@pytest.mark.skipif(not fastconv._ext.have_openmp(), reason="built without OpenMP")
def test_omp_num_threads_sets_the_default():
    assert run_python("import fastconv; print(fastconv.get_num_threads())",
                      OMP_NUM_THREADS="3") == "3"


def test_fastconv_simd_environment_forces_generic():
    assert run_python("import fastconv; print(fastconv.get_simd())",
                      FASTCONV_SIMD="generic") == "generic"


X86_CPUINFO = """processor\t: 0
vendor_id\t: GenuineIntel
cpu family\t: 6
model\t\t: 207
model name\t: Intel(R) Xeon(R) Processor
stepping\t: 2

processor\t: 1
vendor_id\t: GenuineIntel
cpu family\t: 6
model\t\t: 143
model name\t: Another Xeon
"""


def test_cpu_model_names_the_first_processor_with_its_family_and_model():
    assert cpu_model_from_cpuinfo(X86_CPUINFO) == \
        "Intel(R) Xeon(R) Processor (family 6, model 207)"


def test_cpu_model_without_x86_numbers_is_the_name_and_without_a_name_none():
    assert cpu_model_from_cpuinfo("processor\t: 0\nmodel name\t: Some CPU\n") == "Some CPU"
    assert cpu_model_from_cpuinfo("processor\t: 0\nBogoMIPS\t: 50.00\nCPU part\t: 0xd0c\n") \
        is None
    assert cpu_model_from_cpuinfo("") is None


def test_cpu_model_is_never_empty():
    assert cpu_model()
