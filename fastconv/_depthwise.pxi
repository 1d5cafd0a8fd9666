# The depthwise convolution's limits and refusals (src/conv_depthwise.c); its passes run
# through conv_forward / conv_backward (_conv.pxi) with algorithm "depthwise".

# Largest workspace (bytes) one thread of the depthwise kernels takes; above it they
# refuse (FC_ERR_TOO_LARGE) and fastconv/plan.py's auto runs another algorithm.
DEPTHWISE_MAX_WORKSPACE_BYTES = FC_DEPTHWISE_MAX_WORKSPACE_BYTES
# Input planes of at most this many pixels (multiplier 1) run the kernels' channels-last
# path, a block of channels per vector; larger ones, plane by plane.
DEPTHWISE_CHANNELS_LAST_MAX_PIXELS = FC_DEPTHWISE_CHANNELS_LAST_MAX_PIXELS


def depthwise_supports(geom):
    """True where the depthwise kernels run geom: groups == C and K a multiple of C."""
    cdef fc_conv_problem pb = _conv_problem(geom)
    return bool(fc_depthwise_supports(&pb))


def depthwise_workspace_bytes(geom, int64_t itemsize):
    """Bytes of one thread's workspace in the depthwise kernels for geom, with elements of
    itemsize bytes (4 or 8)."""
    cdef fc_conv_problem pb = _conv_problem(geom)
    return fc_depthwise_workspace_bytes(&pb, itemsize)


cdef int _check_depthwise(fc_status status, str what, const fc_conv_problem *pb) except -1:
    """The depthwise kernels' refusals, in their own terms."""
    if status == FC_ERR_INVALID:
        raise ValueError(f"{what}: depthwise needs groups == channels and a filter count "
                         f"that is a multiple of the channels, got {pb.C} channels, groups "
                         f"{pb.groups}, {pb.K} filters")
    if status == FC_ERR_TOO_LARGE:
        raise MemoryError(f"{what}: the depthwise workspace for one {pb.H}x{pb.W} channel "
                          f"plane exceeds the limit of "
                          f"{FC_DEPTHWISE_MAX_WORKSPACE_BYTES >> 20} MiB per thread")
    return 0
