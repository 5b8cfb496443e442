"""Floor 3, what the masks and networks show: accuracies and band energies of masks
(:mod:`~fmask.analysis.masks`), Fourier heat maps (:mod:`~fmask.analysis.heatmap`), the class-specificity
probe (:mod:`~fmask.analysis.probe`), the blue shift (:mod:`~fmask.analysis.blueshift`), training
diagnostics (:mod:`~fmask.analysis.diagnostics`), data statistics (:mod:`~fmask.analysis.datastats`) and
the statistics every verdict uses (:mod:`~fmask.analysis.stats`)."""
