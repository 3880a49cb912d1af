"""One build signature for every kind: ``make_<kind>(name, <context as keywords>, **options)``, the
options being the component's keyword constructor parameters, with the defaults of its config
section, so that a plain call and a run from the config build the same component."""

import inspect

import pytest
import torch

from longdeps import LongdepsError
from longdeps.cells import CELLS, make_cell
from longdeps.config import EXECUTION_FIELDS, NOT_OPTIONS, RunConfig
from longdeps.continuation import CONTINUATIONS, SigmaSchedule, make_continuation
from longdeps.gradients import ESTIMATORS
from longdeps.model import SequenceModel
from longdeps.sampling import SAMPLERS, make_sampler
from longdeps.tasks import TASKS, make_task

#: registry -> its config section
REGISTRIES = {"task": TASKS, "cell": CELLS, "gradient": ESTIMATORS, "sampler": SAMPLERS,
              "continuation": CONTINUATIONS}


def declared_defaults(cls):
    """option -> default, from the constructors of ``cls`` and its bases (where ``**options`` goes on);
    a continuation's ``**schedule`` goes to the ``SigmaSchedule``."""
    found = {}
    for klass in [*cls.__mro__[:-1], SigmaSchedule]:
        if "__init__" in vars(klass):
            for p in inspect.signature(klass).parameters.values():
                found.setdefault(p.name, p.default)
    return found


@pytest.mark.parametrize("section", REGISTRIES)
def test_every_option_is_declared_with_its_config_sections_default(section):
    registry, skip = REGISTRIES[section], {"name", *NOT_OPTIONS.get(section, ()), *EXECUTION_FIELDS.get(section, ())}
    options = {key: value for key, value in RunConfig().to_dict()[section].items() if key not in skip}
    for key in options:
        assert registry.takers(key) or key in registry.shared, f"{section}.{key} is no component's option"
    for name, cls in registry.items():
        defaults = declared_defaults(cls)
        for key, value in options.items():
            if value is not None and key in defaults:
                assert defaults[key] == value, f"{name}: {key} defaults to {defaults[key]!r}, {section}.{key} to {value!r}"


def test_plain_calls_build_samplers_and_continuations_from_keyword_options():
    task = make_task("adding", 10, "cn2016", train_size=20)
    model = SequenceModel(make_cell("srn", task.input_size, 4), task.output_size, task.readout)
    sampler = make_sampler("sgr", task=task, model=model, rule="batch", pool_size=None)
    assert (sampler.rule, sampler.pool_size, sampler.batch_tries) == ("batch", 20, 100)
    diffusion = make_continuation("diffusion", model=model, sigma0=1.0)
    assert diffusion.schedule(0) == 1.0 and model.cell.smoothing == 1.0
    # an option of another component is refused unless at its default; what a component's constructor
    # does not name (the uniform sampler's task is enough, none takes no schedule) is not given
    assert make_sampler("uniform", task=task, rule="example").task is task
    assert type(make_continuation("none", model=model, sigma0=0.5, propagate=False)).__name__ == "Continuation"
    with pytest.raises(LongdepsError, match="^continuation.propagate=True applies to diffusion only, not continuation 'none'$"):
        make_continuation("none", model=model, propagate=True)
    with pytest.raises(LongdepsError, match="^sampler 'sgr' takes no option 'band'$"):
        make_sampler("sgr", task=task, model=model, band=(0, 1))
    batch = sampler.next_batch(4, torch.Generator().manual_seed(0))
    assert batch.size == 4
