"""spiketrack.quant: quantisation (Brevitas QAT), the integer network and its golden executor.

Read in order: ``golden/`` (integer functions, one per hardware unit, docs/integer_semantics.md),
``ir.py`` (the artifact), ``executor.py`` (golden model), ``fake_quant.py`` + ``qat.py`` (the
quantisation-aware float model), ``lower.py`` (QAT model -> IR), ``compare.py`` (golden == Brevitas),
``energy.py`` (SOPs, MACs, energy), ``tracking.py`` (``eval --quantized``).
"""


def tracking_model(model, fmt=None):
    """The hook ``spiketrack eval --quantized`` uses: see :func:`spiketrack.quant.tracking.tracking_model`."""
    from spiketrack.quant.tracking import tracking_model as impl

    return impl(model, fmt)
