# The direct convolution's plan (src/conv_direct_plan.h) and its run counters, for
# inspection and tests: which variant each pass runs for a problem, and which ran.

_FORWARD_NAMES = {FC_DIRECT_FORWARD_BY_PIXELS: "by_pixels",
                  FC_DIRECT_FORWARD_BY_FILTERS: "by_filters"}
_DATA_NAMES = {FC_DIRECT_DATA_SCATTER: "scatter", FC_DIRECT_DATA_GATHER: "gather",
               FC_DIRECT_DATA_LOOPS: "loops"}
_WEIGHT_NAMES = {FC_DIRECT_WEIGHT_BY_PIXELS: "by_pixels",
                 FC_DIRECT_WEIGHT_BY_FILTERS: "by_filters"}
# The variants a caller may name per pass ("direct:NAME", _pass_code): the loops run only
# for weights holding an inf or NaN, whatever is named.
_VARIANT_CODES = {pass_name: {name: code for code, name in names.items() if name != "loops"}
                  for pass_name, names in (("forward", _FORWARD_NAMES),
                                           ("backward_data", _DATA_NAMES),
                                           ("backward_weight", _WEIGHT_NAMES))}


def conv_direct_plan(geom, str dtype, int nthreads):
    """The plan the direct convolution makes for geom (a fastconv._checks.ConvGeometry) in
    dtype ("float32" or "float64") on nthreads threads, at the current SIMD level: the
    variant of each pass ("forward", "backward_data", "backward_weight"), the bands of
    output rows ("band_rows" per band, "bands" per image and group), whether the forward
    and the weight gradient read x in place ("reads_input_in_place",
    "weight_reads_input_in_place"), the parts a forward by filters cuts its filters into,
    which the threads share out ("filter_parts", 1 for none), whether the weight gradient
    by pixels sums a band as one run ("weight_rows_flat"), the gather form's stride phases
    ("gather_phases"), whether the scatter form can run ("scatter_fits"), the data
    gradient's variant for weights holding an inf or NaN ("backward_data_nonfinite_weights":
    always "loops") and the threads each pass runs on ("threads": nthreads, fewer for a
    problem too small to share)."""
    cdef fc_conv_problem pb = _conv_problem(geom)
    cdef fc_direct_plan plan
    cdef fc_status st
    fc_sync_num_threads()
    if dtype == "float32":
        st = fc_conv_direct_plan_f32(&plan, &pb, nthreads)
    elif dtype == "float64":
        st = fc_conv_direct_plan_f64(&plan, &pb, nthreads)
    else:
        raise ValueError(f"conv_direct_plan: dtype must be 'float32' or 'float64', got {dtype!r}")
    _check(st, "conv_direct_plan")
    return {
        "forward": _FORWARD_NAMES[plan.forward],
        "backward_data": _DATA_NAMES[plan.backward_data],
        "backward_data_nonfinite_weights": _DATA_NAMES[FC_DIRECT_DATA_LOOPS],
        "backward_weight": _WEIGHT_NAMES[plan.backward_weight],
        "band_rows": plan.band_rows,
        "bands": plan.bands,
        "reads_input_in_place": bool(plan.forward_reads_x_in_place),
        "filter_parts": plan.filter_parts,
        "weight_reads_input_in_place": bool(plan.weight_reads_x_in_place),
        "weight_rows_flat": bool(plan.weight_rows_flat),
        "gather_phases": plan.data_gather_phases,
        "scatter_fits": bool(plan.scatter_fits),
        "threads": plan.threads,
    }


def conv_direct_variant_counts():
    """Calls of each direct-convolution variant since the library was loaded (both element
    types), keyed by pass, then variant: {"forward": {"by_pixels": n, ...}, ...}."""
    cdef int v
    return {
        "forward": {name: fc_conv_direct_forward_runs(<fc_direct_forward_variant>v)
                    for v, name in _FORWARD_NAMES.items()},
        "backward_data": {name: fc_conv_direct_data_runs(<fc_direct_data_variant>v)
                          for v, name in _DATA_NAMES.items()},
        "backward_weight": {name: fc_conv_direct_weight_runs(<fc_direct_weight_variant>v)
                            for v, name in _WEIGHT_NAMES.items()},
    }
