"""longdeps: recurrent networks on long-term dependencies.

Everything a training loop of your own needs is importable from here: the cells, the gradient
estimators, the samplers, the continuations, tasks, the model with its readout, the run config
and ``run_experiment``, and the probes. Each is imported on first use, so that
``longdeps --help`` does not wait for torch.
"""

from importlib import import_module

from longdeps.errors import LongdepsError

__version__ = "0.1.0"

#: public name -> the module that defines it
_EXPORTS = {
    **dict.fromkeys(["ASRNN", "BNLSTM", "CELLS", "GRU", "LSTM", "OrthogonalRNN", "RecurrentCell", "SRN", "make_cell"],
                    "longdeps.cells"),
    **dict.fromkeys(["BPTT", "DSF", "ESTIMATORS", "GradientEstimator", "TBPTT", "alignment", "hidden_gradient_norms",
                     "long_term_ratio", "make_estimator"], "longdeps.gradients"),
    **dict.fromkeys(["SAMPLERS", "SGRSampler", "Sampler", "UniformSampler", "make_sampler"], "longdeps.sampling"),
    **dict.fromkeys(["CONTINUATIONS", "Continuation", "Diffusion", "WeightNoise", "make_continuation"],
                    "longdeps.continuation"),
    **dict.fromkeys(["TASKS", "Batch", "Task", "make_task"], "longdeps.tasks"),
    **dict.fromkeys(["ContinuationConfig", "RunConfig", "SamplerConfig", "load_config"], "longdeps.config"),
    "SequenceModel": "longdeps.model",
    "evaluate": "longdeps.evaluation",
    "run_experiment": "longdeps.experiment",
    **dict.fromkeys(["TrainedModel", "load_run"], "longdeps.inference"),
}
__all__ = sorted(["LongdepsError", *_EXPORTS])


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'longdeps' has no attribute {name!r}")
