"""Floor 5, the paper's experiment: profiles (:mod:`~fmask.experiment.profiles`), the cached stages on the
artifact store (:mod:`~fmask.experiment.stages`), the run that trains networks and learns masks
(:mod:`~fmask.experiment.run`), the image selection (:mod:`~fmask.experiment.selection`), the mask variants
(:mod:`~fmask.experiment.variants`), the architecture comparison (:mod:`~fmask.experiment.compare`) and
the result files each chapter saves (:mod:`~fmask.experiment.results`)."""
