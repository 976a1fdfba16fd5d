"""One registry style for every kind of component."""

import pytest

from common.registry import Registry


def test_a_name_is_taken_once_and_an_unknown_one_names_the_setting_and_the_choices():
    things = Registry("thing", "model.thing")

    @things.register("a")
    class A:
        pass

    things.add("b", len)
    assert things.get("a") is A and list(things) == ["a", "b"] and "b" in things
    assert len(things) == 2 and "c" not in things
    with pytest.raises(ValueError, match=r"a thing named 'a' is already registered \(A\)"):
        things.add("a", int)
    with pytest.raises(ValueError, match=r"unknown model.thing 'c'; choose one of \['a', 'b'\]"):
        things.get("c")


@pytest.mark.parametrize("registry, setting", [
    ("planners.base:PLANNERS", "planner"), ("worldmodel.encoders:ENCODERS", "model.encoder"),
    ("worldmodel.predictors:PREDICTORS", "model.predictor"),
    ("worldmodel.regularisers:REGULARISERS", "loss.regulariser"),
    ("worldmodel.mixings:MIXINGS", "world.mixing"),
    ("worldmodel.synthetic:LATENT_LAWS", "world.law"), ("envs.policies:POLICIES", "policy")])
def test_every_component_kind_is_a_registry(registry, setting):
    import importlib

    module, _, name = registry.partition(":")
    found = getattr(importlib.import_module(module), name)
    assert isinstance(found, Registry) and found.setting == setting and len(found) >= 2
