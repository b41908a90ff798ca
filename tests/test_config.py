"""Typed config: loading, validation messages, dotted overrides, saving, loader options."""

from __future__ import annotations

import dataclasses
import inspect
from dataclasses import dataclass

import pytest
import yaml

from wormhole.config import (
    CONFIG_DIR,
    Config,
    ConfigError,
    DataConfig,
    apply_overrides,
    build_dataclass,
    config_from_dict,
    config_to_dict,
    load_config,
    option,
    resolve_config_path,
    save_config,
)
from wormhole.data.dataset import LOADERS, get_loader, load_clouds


def test_defaults_build_a_valid_config():
    config = load_config()
    assert config == Config()
    assert config_from_dict(config_to_dict(config)) == config


@pytest.mark.parametrize("raw, names", [
    ({"train": {"stepz": 5}}, ["train.stepz", "section 'train'", "Did you mean 'steps'?"]),
    ({"tarin": {}}, ["'tarin'", "top level", "Did you mean 'train'?"]),
    ({"ot": {"epsilom": 0.1}}, ["ot.epsilom", "section 'ot'", "Did you mean 'epsilon'?"]),
])
def test_unknown_key_names_section_key_and_closest_valid_key(raw, names):
    with pytest.raises(ConfigError) as err:
        config_from_dict(raw)
    for name in names:
        assert name in str(err.value)


def test_unknown_key_lists_the_valid_keys_of_its_section():
    with pytest.raises(ConfigError, match="Valid keys: .*steps.*batch_size"):
        config_from_dict({"train": {"xyzzy": 1}})


@pytest.mark.parametrize("raw, key, expected", [
    ({"train": {"steps": "many"}}, "train.steps", "expected int"),
    ({"train": {"steps": True}}, "train.steps", "expected int"),  # bool is not an int here
    ({"train": {"steps": 2.5}}, "train.steps", "expected int"),
    ({"ot": {"lse_mode": "yes"}}, "ot.lse_mode", "expected bool"),
    ({"model": {"decoder_points": "ten"}}, "model.decoder_points", "expected int or null"),
    ({"data": {"options": [1, 2]}}, "data.options", "expected dict"),
    ({"train": 5}, "train", "expected a mapping"),
])
def test_wrong_type_names_the_key_and_the_expected_type(raw, key, expected):
    with pytest.raises(ConfigError) as err:
        config_from_dict(raw)
    assert str(err.value).startswith(key)
    assert expected in str(err.value)


def test_int_is_accepted_for_a_float_and_becomes_a_float():
    config = config_from_dict({"train": {"learning_rate": 1}})
    assert isinstance(config.train.learning_rate, float)
    assert config.train.learning_rate == 1.0


def test_exponent_without_a_dot_is_a_float_on_the_command_line_and_in_yaml(tmp_path):
    # YAML 1.1 (PyYAML) reads "1e-3" as a string; a float field must still take it.
    config = load_config("digits.yaml", ["train.learning_rate=1e-3", "ot.epsilon=5E-2"])
    assert config.train.learning_rate == 1e-3 and config.ot.epsilon == 0.05
    path = tmp_path / "c.yaml"
    path.write_text("train:\n  learning_rate: 2e-4\n")
    assert load_config(path).train.learning_rate == 2e-4
    with pytest.raises(ConfigError, match="train.learning_rate: expected float"):
        config_from_dict({"train": {"learning_rate": "1e-3x"}})


def test_out_of_range_choice_names_key_and_all_allowed_values():
    with pytest.raises(ConfigError) as err:
        config_from_dict({"ot": {"kind": "W3"}})
    message = str(err.value)
    assert message.startswith("ot.kind")
    assert "'W3' is not allowed" in message
    assert "W1, W2, S1, S2, GW, GS" in message


@pytest.mark.parametrize("raw, key, bound", [
    ({"train": {"batch_size": 1}}, "train.batch_size", ">= 2"),
    ({"ot": {"epsilon": 0}}, "ot.epsilon", "> 0.0"),
    ({"ot": {"epsilon": -1.0}}, "ot.epsilon", "> 0.0"),
    ({"data": {"test_fraction": 0.95}}, "data.test_fraction", "<= 0.9"),
    ({"data": {"max_points": 0}}, "data.max_points", ">= 1"),
    ({"train": {"steps": 0}}, "train.steps", ">= 1"),  # no step: no checkpoint to load
])
def test_out_of_range_number_names_key_and_bound(raw, key, bound):
    with pytest.raises(ConfigError) as err:
        config_from_dict(raw)
    assert str(err.value).startswith(key)
    assert f"must be {bound}" in str(err.value)


@pytest.mark.parametrize("text", [".inf", "-.inf", ".nan", "nan", "Infinity"])
def test_non_finite_numbers_are_refused_on_load(text):
    """An infinite epsilon used to pass validation and fail only at the first step."""
    with pytest.raises(ConfigError, match=r"ot\.epsilon: .* it must be a finite number"):
        load_config(None, [f"ot.epsilon={text}"])


def test_range_bounds_themselves_are_allowed():
    config = config_from_dict({"train": {"batch_size": 2}, "data": {"test_fraction": 0.9}})
    assert (config.train.batch_size, config.data.test_fraction) == (2, 0.9)


def test_cross_key_checks_name_both_keys():
    with pytest.raises(ConfigError, match="model.width .* model.num_heads"):
        config_from_dict({"model": {"width": 30, "num_heads": 4}})
    with pytest.raises(ConfigError, match="data.path"):
        config_from_dict({"data": {"name": "files"}})
    with pytest.raises(ConfigError, match="ot.solver: .* ot.kind 'S2'"):
        config_from_dict({"ot": {"kind": "S2", "solver": "sorting"}})
    with pytest.raises(ConfigError, match=r"ot.decoder_kind 'S1' .* \(ot.solver\)"):
        config_from_dict({"ot": {"kind": "W1", "decoder_kind": "S1", "solver": "sorting"}})


@pytest.mark.parametrize("ot,model", [({"kind": "GW"}, {}), ({"kind": "S1"}, {}),
                                      ({"kind": "S2", "cost": "euclidean"}, {}),
                                      ({"kind": "S2"}, {"embedding_distance": "euclidean"})])
def test_mean_split_is_refused_where_the_target_has_no_exact_mean_term(ot, model):
    with pytest.raises(ConfigError, match="model.mean_split needs"):
        config_from_dict({"ot": ot, "model": {"mean_split": True, **model}})


def test_mean_split_is_allowed_for_squared_euclidean_kinds_under_any_spelling():
    for ot in ({"kind": "S2"}, {"kind": "W2"}, {"kind": "S2", "cost": "squared_euclidean"}):
        assert config_from_dict({"ot": ot, "model": {"mean_split": True}}).model.mean_split


def test_dotted_overrides_set_values_parsed_as_yaml_without_touching_the_input():
    raw = {"train": {"steps": 10}}
    out = apply_overrides(raw, ["train.steps=200", "ot.kind=S2", "model.decoder_points=",
                                "data.options={threshold: 0.3}", "train.workdir=/tmp/x"])
    assert raw == {"train": {"steps": 10}}
    assert out["train"] == {"steps": 200, "workdir": "/tmp/x"}
    assert out["ot"] == {"kind": "S2"}
    assert out["model"] == {"decoder_points": None}
    assert out["data"] == {"options": {"threshold": 0.3}}


@pytest.mark.parametrize("override, message", [
    ("train.steps", "must look like section.key=value"),
    ("train.steps.inner=3", "'steps' is not a section"),
])
def test_malformed_overrides_are_refused(override, message):
    with pytest.raises(ConfigError, match=message):
        apply_overrides({"train": {"steps": 10}}, [override])


def test_load_config_applies_overrides_to_a_bare_name():
    config = load_config("digits", ["train.steps=200", "ot.kind=W2"])
    base = load_config("digits")
    assert config.name == "digits"
    assert config.train.steps == 200 and base.train.steps != 200
    assert config.ot.kind == "W2" and base.ot.kind == "S2"
    assert config.data == base.data


def test_invalid_override_error_names_file_and_key():
    with pytest.raises(ConfigError) as err:
        load_config("digits", ["ot.kind=W9"])
    assert "digits.yaml" in str(err.value)
    assert "ot.kind" in str(err.value)


@pytest.mark.parametrize("overrides, blamed", [
    (["train.steps=5", "train.step=30"], "digits.yaml with override 'train.step=30': Unknown "),
    (["model.width=abc", "ot.epsilon=0.1"], "digits.yaml with override 'model.width=abc': "),
    (["train.steps=-3"], "digits.yaml with override 'train.steps=-3': train.steps: -3 is out"),
])
def test_an_error_from_an_override_names_the_override(overrides, blamed):
    with pytest.raises(ConfigError) as err:
        load_config("digits", overrides)
    assert str(err.value).startswith(str(CONFIG_DIR / blamed))


def test_an_error_in_the_file_is_the_file_s_even_with_overrides(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("train:\n  stepz: 3\n")
    with pytest.raises(ConfigError) as err:
        load_config(path, ["train.steps=5"])
    assert str(err.value).startswith(f"{path}: Unknown key 'train.stepz'")
    # An override may also mend the file's out-of-range value: then nothing is wrong ...
    path.write_text("train:\n  steps: -1\n")
    assert load_config(path, ["train.steps=5"]).train.steps == 5
    # ... and an error it leaves in the file stays the file's.
    path.write_text("train:\n  steps: -1\nmodel:\n  widht: 3\n")
    with pytest.raises(ConfigError) as err:
        load_config(path, (o for o in ["train.steps=5", "data.name=digits"]))
    assert str(err.value).startswith(f"{path}: Unknown key 'model.widht'")
    # A suggestion naming a key ('name') does not blame the override that set that key.
    with pytest.raises(ConfigError) as err:
        load_config("digits", ["name=mine", "data.nam=x"])
    assert "with override 'data.nam=x': Unknown key" in str(err.value)


def test_bare_names_resolve_in_the_configs_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # nothing named digits here
    assert resolve_config_path("digits") == CONFIG_DIR / "digits.yaml"
    assert resolve_config_path("digits.yaml") == CONFIG_DIR / "digits.yaml"
    local = tmp_path / "mine.yaml"
    local.write_text("train:\n  steps: 3\n")
    assert resolve_config_path(local) == local
    assert load_config(local).name == "mine"  # the name defaults to the file stem


def test_missing_config_lists_where_it_looked_and_what_exists(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError) as err:
        resolve_config_path("no_such_experiment")
    assert str(CONFIG_DIR) in str(err.value)
    assert "digits.yaml" in str(err.value)


@pytest.mark.parametrize("text, message", [
    ("train: [unclosed", "not valid YAML"),
    ("- a\n- b\n", "top level must be a mapping"),
    # PyYAML keeps the last of two equal keys: the first section would vanish silently.
    ("train:\n  steps: 5\nmodel:\n  width: 8\ntrain:\n  batch_size: 4\n",
     "found the key 'train' twice"),
    ("train:\n  steps: 5\n  steps: 6\n", "found the key 'steps' twice"),
])
def test_malformed_yaml_file_is_named(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert str(path) in str(err.value) and message in str(err.value)


def test_saved_config_loads_back_identically(tmp_path):
    config = load_config("digits", ["train.steps=7", "ot.kind=GW", "model.decoder_points=64",
                                    "data.options={threshold: 0.25}", "data.max_points=20"])
    path = save_config(config, tmp_path / "run" / "config.yaml")
    again = load_config(path)
    assert again == config
    assert again.name == "digits"  # the stored name wins over the file stem
    assert yaml.safe_load(path.read_text())["train"]["steps"] == 7


@pytest.mark.parametrize("path", sorted(p for p in CONFIG_DIR.glob("*.yaml")
                                         if not p.stem.startswith("neural_")),
                         ids=lambda p: p.stem)
def test_every_shipped_config_loads(path):
    config = load_config(path)
    assert config.name


def test_build_dataclass_validates_other_config_kinds():
    @dataclass
    class Estimator:
        hidden: int = option(64, min=1)
        activation: str = option("relu", choices=("relu", "gelu"))

    assert build_dataclass(Estimator, {"hidden": 8}) == Estimator(hidden=8)
    with pytest.raises(ConfigError, match="Did you mean 'hidden'"):
        build_dataclass(Estimator, {"hiden": 8})
    with pytest.raises(ConfigError, match="net.activation: 'tanh' is not allowed"):
        build_dataclass(Estimator, {"activation": "tanh"}, prefix="net")


def test_every_loader_takes_path_and_seed_first():
    # load_clouds passes path and seed to every loader and checks the rest as options.
    for name in LOADERS:
        params = list(inspect.signature(get_loader(name)).parameters)
        assert params[:2] == ["path", "seed"], name
    names = {f.name: f for f in dataclasses.fields(DataConfig)}["name"].metadata["choices"]
    assert set(LOADERS) == set(names)


@pytest.mark.parametrize("name, typo, suggestion", [
    ("mnist", "treshold", "threshold"),
    ("digits", "treshold", "threshold"),
    ("synthetic", "num_cloud", "num_clouds"),
    ("shapes", "shape", "shapes"),
])
def test_loader_options_are_checked_against_the_loader_signature(name, typo, suggestion):
    config = DataConfig(name=name, options={typo: 1}, path="unused")
    with pytest.raises(ConfigError) as err:
        load_clouds(config)
    message = str(err.value)
    assert f"data.options.{typo}" in message
    assert f"Did you mean '{suggestion}'?" in message
    assert f"'{name}' loader" in message


def test_unknown_loader_name_suggests_the_closest():
    with pytest.raises(ConfigError, match="Did you mean 'mnist'"):
        get_loader("mnsit")
    with pytest.raises(ConfigError, match="data.name"):
        config_from_dict({"data": {"name": "mnsit"}})


@pytest.mark.parametrize("value, hint", [("s2", "S2"), ("gs", "GS"), ("W3", "W2")])
def test_a_choice_in_the_wrong_case_is_pointed_at_its_own_spelling(value, hint):
    # difflib alone found 'W2' for 's2': same letters in another case come first.
    with pytest.raises(ConfigError, match=f"Did you mean '{hint}'"):
        config_from_dict({"ot": {"kind": value}})
