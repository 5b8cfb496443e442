"""Floor 3, what the masks and networks show. The modules (import them directly; this package imports nothing):

* :mod:`~fmask.analysis.maps` -- the shape check of mask inputs, centred mask maps, differences between masks;
* :mod:`~fmask.analysis.complements` -- the complement threshold, binarised and complement masks, kept shares;
* :mod:`~fmask.analysis.bands` -- band energies, their differences between regimes and spread over seeds, band
  dominance, the low-half share of each mask's top entries;
* :mod:`~fmask.analysis.density` -- the density-fair Fig. 4 setting (numpy only) and how each statistic follows
  mask density;
* :mod:`~fmask.analysis.accuracy` -- predictions, masked accuracies, per-image outcomes and the Table 1 / Table 2
  counts;
* :mod:`~fmask.analysis.probe` -- class specificity: the linear probe, its permutation null, UMAP, the study;
* :mod:`~fmask.analysis.heatmap` -- Fourier heat maps (Yin et al., 2019);
* :mod:`~fmask.analysis.passband` -- accuracy under ideal low- and high-pass filters;
* :mod:`~fmask.analysis.agreement` -- rank agreement and recall@k of masks and heat maps;
* :mod:`~fmask.analysis.planted` -- the planted-frequency benchmark;
* :mod:`~fmask.analysis.evaluation` -- argument checks and batched predictions for the frequency analyses;
* :mod:`~fmask.analysis.blueshift` -- the blue shift of activations;
* :mod:`~fmask.analysis.diagnostics` -- training, network and degenerate-mask diagnostics;
* :mod:`~fmask.analysis.datastats` -- data statistics;
* :mod:`~fmask.analysis.stats` -- the interval statistics every verdict uses, and spreads over seeds.
"""
